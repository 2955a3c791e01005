"""Fake raw datasets for the prepare steps: an ACLSum-like folder and arXiv/PubMed JSON lines."""
import json
from pathlib import Path


def lines(path):
    """The lines of a text file as the project reads them (split at \\n only)."""
    return Path(path).read_text(encoding="utf-8").split("\n")[:-1]


def fake_aclsum(root: Path, papers):
    """An aclsum ``dataset`` folder: ``papers`` maps train/val/test to ``(id, paper)`` pairs; a
    paper is a dict (written as JSON), bytes (written as they are) or None (no paper file)."""
    (root / "paper_jsons").mkdir(parents=True)
    for list_name in ("train", "val", "test"):
        with open(root / f"{list_name}.jsonl", "w") as f:
            for doc_id, paper in papers.get(list_name, []):
                f.write(json.dumps({"id": doc_id}) + "\n")
                if paper is not None:
                    path = root / "paper_jsons" / f"{doc_id}.json"
                    if isinstance(paper, bytes):
                        path.write_bytes(paper)
                    else:
                        path.write_text(json.dumps(paper))
    return root


def paper(body, abstract):
    """An S2ORC paper with these body paragraphs and this abstract."""
    return {"abstract": abstract, "pdf_parse": {"body_text": [{"text": t} for t in body]}}


def record(doc_id, article, abstract):
    """One line of the original arXiv/PubMed release."""
    return json.dumps(
        {
            "article_id": doc_id,
            "article_text": article,
            "abstract_text": abstract,
            "labels": None,
            "section_names": ["introduction", "conclusion"],
            "sections": [article[:1], article[1:]],
        }
    )
