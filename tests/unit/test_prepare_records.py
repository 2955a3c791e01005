"""The shape of every external record the prepare steps read: ACLSum split lists and paper JSON,
arXiv/PubMed JSON lines. A field of the wrong type skips the document with a warning naming it and
the field (an error with --strict), never a TypeError or AttributeError."""
import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from deep_pyramidion.data.aclsum import prepare_aclsum
from deep_pyramidion.data.arxiv_pubmed import prepare_arxiv_pubmed
from deep_pyramidion.data.cli import prepare_aclsum_main
from deep_pyramidion.data.io import DataError
from tests.support.prepared import fake_aclsum, lines, paper

FUZZ = settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-5, 5) | st.floats(allow_nan=False) | st.text(max_size=12),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.sampled_from(["text", "x"]), children, max_size=2),
    max_leaves=6,
)


def _aclsum_with(tmp_path, bad_paper):
    data = fake_aclsum(tmp_path / "ds", {"train": [("good", paper(["Body one."], "Abs one.")),
                                                  ("odd", bad_paper)],
                                         "val": [("v", paper(["B."], "A."))], "test": []})
    return data


@pytest.mark.parametrize(
    "bad, field",
    [
        ({"abstract": "A.", "pdf_parse": ["not", "an", "object"]}, "pdf_parse is array"),
        ({"abstract": "A.", "pdf_parse": {"body_text": "a string"}}, "pdf_parse.body_text is string"),
        ({"abstract": "A.", "pdf_parse": {"body_text": 7}}, "pdf_parse.body_text is int"),
        ({"abstract": "A.", "pdf_parse": {"body_text": ["para"]}}, "pdf_parse.body_text[0] is string"),
        ({"abstract": "A.", "pdf_parse": {"body_text": [{"text": "ok"}, {"text": 3}]}}, "pdf_parse.body_text[1].text is int"),
        ({"abstract": ["A."], "pdf_parse": {"body_text": [{"text": "B."}]}}, "abstract is array"),
        ({"abstract": "", "pdf_parse": {"body_text": [{"text": "B."}], "abstract": {"text": "A."}}}, "pdf_parse.abstract is object"),
        (["a", "paper", "as", "a", "list"], "(the paper) is array"),
    ],
)
def test_aclsum_paper_of_the_wrong_shape_is_skipped_naming_the_field(tmp_path, bad, field):
    data = _aclsum_with(tmp_path, bad)
    out = tmp_path / "out"
    result = prepare_aclsum(str(out), str(data))
    assert lines(out / "train.ids") == ["good"]
    (skip,) = result.skips.skips
    assert skip.doc_id == "odd" and field in skip.reason and skip.where.endswith("odd.json")
    with pytest.raises(DataError, match=r"odd\.json: field .*--strict"):
        prepare_aclsum(str(tmp_path / "strict"), str(data), strict=True)


def test_aclsum_split_list_entries_of_the_wrong_shape_are_skipped(tmp_path, capsys):
    data = _aclsum_with(tmp_path, paper(["B."], "A."))
    with open(data / "train.jsonl", "a") as f:
        f.write('["not an object"]\n{"id": 12}\n{"id": "  "}\n{"no_id": "x"}\n')
    out = tmp_path / "out"
    assert prepare_aclsum_main(["--data-dir", str(data), "--out", str(out)]) == 0
    assert "skipped 4 of 7" in capsys.readouterr().out
    reasons = {row.split("\t")[1]: row.split("\t")[3] for row in lines(out / "skipped.tsv")[1:]}
    assert reasons == {
        "line3": "split list entry is array, expected an object with an 'id'",
        "line4": "field id is int, expected a non-empty string",
        "line5": "field id is empty, expected a non-empty string",
        "line6": "field id is null, expected a non-empty string",
    }
    assert prepare_aclsum_main(["--data-dir", str(data), "--out", str(tmp_path / "s"), "--strict"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("error: ") and "train.jsonl:3" in err[-1]


@FUZZ
@given(pdf_parse=json_values, body=json_values, text=json_values, abstract=json_values)
def test_aclsum_any_json_in_any_field_is_written_or_skipped(tmp_path_factory, pdf_parse, body, text, abstract):
    root = tmp_path_factory.mktemp("acl")
    candidates = {"pdf_parse": pdf_parse if not isinstance(pdf_parse, dict) else {"body_text": body}}
    if isinstance(body, list):
        candidates["pdf_parse"] = {"body_text": [{"text": text}, *body]}
    bad = {"abstract": abstract, **candidates}
    data = _aclsum_with(root, bad)
    result = prepare_aclsum(str(root / "out"), str(data))
    assert result.counts["train"] + len([s for s in result.skips.skips if s.split == "train"]) == 2
    assert "good" in lines(root / "out" / "train.ids")
    for skip in result.skips.skips:
        assert skip.doc_id == "odd"


def _arxiv(tmp_path, rows):
    root = tmp_path / "arxiv"
    root.mkdir()
    good = {"article_id": "good", "article_text": ["we study x ."], "abstract_text": ["<S> x works . </S>"]}
    for split in ("train", "val", "test"):
        with open(root / f"{split}.txt", "w") as f:
            f.write(json.dumps(good) + "\n")
            for row in rows if split == "train" else []:
                f.write((row if isinstance(row, str) else json.dumps(row)) + "\n")
    return root


@pytest.mark.parametrize(
    "row, field",
    [
        ('["a list"]', "record is array"),
        ("7", "record is int"),
        ({"article_id": ["x"], "article_text": ["a ."], "abstract_text": ["<S> b . </S>"]}, "field article_id is array"),
        ({"article_id": "x", "article_text": {"a": 1}, "abstract_text": ["<S> b . </S>"]}, "field article_text is object"),
        ({"article_id": "x", "article_text": ["a .", 3], "abstract_text": ["<S> b . </S>"]}, "field article_text[1] is int"),
        ({"article_id": "x", "article_text": ["a ."], "abstract_text": 1.5}, "field abstract_text is float"),
        ({"article_id": "x", "article_text": ["a ."], "abstract_text": [None]}, "field abstract_text[0] is null"),
    ],
)
def test_arxiv_record_of_the_wrong_shape_is_skipped_naming_the_field(tmp_path, row, field):
    root = _arxiv(tmp_path, [row])
    result = prepare_arxiv_pubmed([str(root)], str(tmp_path / "out"))
    assert result.counts == {"train": 1, "dev-0": 1, "test-A": 1}
    (skip,) = result.skips.skips
    assert field in skip.reason and skip.where.endswith("train.txt:2")
    with pytest.raises(DataError, match=r"train\.txt:2: .*--strict"):
        prepare_arxiv_pubmed([str(root)], str(tmp_path / "strict"), strict=True)


@FUZZ
@given(doc_id=json_values, article=json_values, abstract=json_values, whole=json_values)
def test_arxiv_any_json_is_written_or_skipped(tmp_path_factory, doc_id, article, abstract, whole):
    root = _arxiv(tmp_path_factory.mktemp("ax"), [{"article_id": doc_id, "article_text": article,
                                                   "abstract_text": abstract}, json.dumps(whole)])
    result = prepare_arxiv_pubmed([str(root)], str(root.parent / "out"))
    assert result.counts["train"] + len(result.skips) == result.listed["train"] == 3
    assert lines(root.parent / "out" / "train.ids")[0] == "good"
