"""Preparation of the text splits: ACLSum (real package data), arXiv/PubMed fixture, bad inputs."""
import json
from pathlib import Path

import pytest

from deep_pyramidion.data import io as dio
from deep_pyramidion.data.aclsum import SPLIT_NAMES as ACL_SPLITS
from deep_pyramidion.data.aclsum import prepare_aclsum, read_split_list
from deep_pyramidion.data.arxiv_pubmed import abstract_sentences, find_split_files, prepare_arxiv_pubmed
from deep_pyramidion.data.cli import prepare_aclsum_main, prepare_arxiv_pubmed_main
from deep_pyramidion.data.sentences import MARKER, split_marked
from tests.support.prepared import fake_aclsum as _fake_aclsum
from tests.support.prepared import lines
from tests.support.prepared import paper as _paper
from tests.support.prepared import record as _record

SPLITS = ("train", "dev-0", "test-A")

# --------------------------------------------------------------------------- aclsum (package data)


@pytest.fixture(scope="module")
def aclsum_out(tmp_path_factory):
    out = tmp_path_factory.mktemp("aclsum")
    result = prepare_aclsum(str(out))
    result.write_manifest(str(out), source="aclsum")
    return out, result


def test_aclsum_counts_add_up_to_split_lists(aclsum_out):
    from deep_pyramidion.data.aclsum import aclsum_data_dir

    out, result = aclsum_out
    data_dir = Path(aclsum_data_dir())
    for list_name, split in ACL_SPLITS.items():
        listed = read_split_list(str(data_dir / f"{list_name}.jsonl"))
        skipped = [s for s in result.skips.skips if s.split == split]
        n = len(lines(out / f"{split}.src"))
        assert n == len(listed) - len(skipped), split
        assert len(lines(out / f"{split}.tgt")) == n
        assert len(lines(out / f"{split}.ids")) == n
    assert sum(result.counts.values()) + len(result.skips) == 250
    manifest = json.loads((out / "prepare.json").read_text())
    assert manifest["counts"] == {"train": 100, "dev-0": 50, "test-A": 100}


def test_aclsum_ids_traceable_and_lines_clean(aclsum_out):
    from deep_pyramidion.data.aclsum import aclsum_data_dir

    out, _ = aclsum_out
    data_dir = Path(aclsum_data_dir())
    for list_name, split in ACL_SPLITS.items():
        listed = [doc_id for _, doc_id in read_split_list(str(data_dir / f"{list_name}.jsonl"))]
        ids = lines(out / f"{split}.ids")
        assert ids == [i for i in listed if i in set(ids)]  # same order as the split list
        for doc_id, tgt in zip(ids, lines(out / f"{split}.tgt")):
            paper = json.loads((data_dir / "paper_jsons" / f"{doc_id}.json").read_text(encoding="utf-8"))
            # the reference really is this paper's abstract
            assert " ".join(split_marked(tgt)).split() == paper["abstract"].split()
        for name in ("src", "tgt"):
            raw = (out / f"{split}.{name}").read_bytes()
            assert b"\t" not in raw and b"\r" not in raw
            assert all(line.strip() for line in lines(out / f"{split}.{name}"))
    targets = lines(out / "train.tgt")
    assert sum(f" {MARKER} " in t for t in targets) >= 0.9 * len(targets)


def test_aclsum_max_source_words(tmp_path):
    result = prepare_aclsum(str(tmp_path), max_source_words=50)
    assert result.counts["dev-0"] == 50
    assert max(len(line.split()) for line in lines(tmp_path / "dev-0.src")) == 50


def test_aclsum_bad_documents_are_counted_and_named(tmp_path):
    data = _fake_aclsum(
        tmp_path / "ds",
        {
            "train": [
                ("good", _paper(["Body one.", "Body two."], "Abs one. Abs two.")),
                ("empty", _paper(["  "], "An abstract.")),
                ("noabs", _paper(["Body."], "")),
                ("gone", None),
                ("latin1", b'{"abstract": "caf\xe9"}'),
            ],
            "val": [("v", _paper(["B."], "A."))],
            "test": [("t", _paper(["B."], "A."))],
        },
    )
    out = tmp_path / "out"
    rc = prepare_aclsum_main(["--data-dir", str(data), "--out", str(out)])
    assert rc == 0
    assert lines(out / "train.ids") == ["good"]
    assert lines(out / "train.tgt") == ["Abs one. <q> Abs two."]
    reasons = {row.split("\t")[1]: row.split("\t")[3] for row in lines(out / "skipped.tsv")[1:]}
    assert set(reasons) == {"empty", "noabs", "gone", "latin1"}
    assert "empty body" in reasons["empty"] and "without an abstract" in reasons["noabs"]
    assert "UTF-8" in reasons["latin1"]

    with pytest.raises(dio.DataError, match="empty.json.*empty body.*--strict"):
        prepare_aclsum(str(tmp_path / "strict"), str(data), strict=True)
    assert prepare_aclsum_main(["--data-dir", str(data), "--out", str(tmp_path / "s2"), "--strict"]) == 1


def test_prepare_aclsum_summary_line(tmp_path, capsys):
    data = _fake_aclsum(
        tmp_path / "ds",
        {"train": [("a", _paper(["B."], "A.")), ("b", _paper([""], "A."))], "val": [], "test": []},
    )
    assert prepare_aclsum_main(["--data-dir", str(data), "--out", str(tmp_path / "o")]) == 0
    assert "skipped 1 of 2: ids train:b" in capsys.readouterr().out


# --------------------------------------------------------------------------- arXiv / PubMed fixture


@pytest.fixture
def original_release(tmp_path):
    root = tmp_path / "arxiv-dataset"
    root.mkdir()
    docs = {
        "train": [
            ("1001.0001", ["we study a model .", "it pools tokens ."], ["<S> we study pooling . </S>", "<S> it is fast . </S>"]),
            ("1001.0002", ["second\tarticle with\nnewlines ."], ["<S> second abstract . </S>"]),
            ("1001.0003", [], ["<S> no article . </S>"]),
        ],
        "val": [("2001.0001", ["val article ."], ["<S> val abstract . </S>"])],
        "test": [
            ("3001.0001", ["test article one ."], ["<S> test abstract one . </S>"]),
            ("3001.0002", ["test article two ."], []),
        ],
    }
    for split, rows in docs.items():
        with open(root / f"{split}.txt", "w") as f:
            for row in rows:
                f.write(_record(*row) + "\n")
    return root


def test_arxiv_pubmed_original_format(original_release, tmp_path):
    out = tmp_path / "out"
    result = prepare_arxiv_pubmed([str(original_release)], str(out))
    assert result.counts == {"train": 2, "dev-0": 1, "test-A": 1}
    assert lines(out / "train.ids") == ["1001.0001", "1001.0002"]
    assert lines(out / "train.src") == ["we study a model . it pools tokens .", "second article with newlines ."]
    assert lines(out / "train.tgt")[0] == "we study pooling . <q> it is fast ."
    assert lines(out / "dev-0.tgt") == ["val abstract ."]
    assert lines(out / "test-A.ids") == ["3001.0001"]
    skipped = {(s.split, s.doc_id): s for s in result.skips.skips}
    assert set(skipped) == {("train", "1001.0003"), ("test-A", "3001.0002")}
    assert skipped[("train", "1001.0003")].where.endswith("train.txt:3")
    assert "without an abstract" in skipped[("test-A", "3001.0002")].reason
    assert result.skips.summary(result.total).startswith("skipped 2 of 6")


def test_arxiv_pubmed_files_and_missing_split(original_release, tmp_path):
    files = [str(original_release / f"{s}.txt") for s in ("test", "train", "val")]
    assert find_split_files(files) == {s: str(original_release / f"{s}.txt") for s in ("train", "val", "test")}
    (original_release / "val.txt").unlink()
    with pytest.raises(dio.DataError, match="missing split file for 'val'.*val.txt"):
        find_split_files([str(original_release)])
    assert prepare_arxiv_pubmed_main(["--input", str(original_release), "--out", str(tmp_path / "o")]) == 1


def test_arxiv_pubmed_bad_json_and_encoding_name_file_and_line(original_release, tmp_path, capsys):
    with open(original_release / "val.txt", "ab") as f:
        f.write(b'{"article_id": "x", "article_text": ["caf\xe9"]}\n')
    with pytest.raises(dio.DataError, match=r"val\.txt:2: not valid UTF-8"):
        prepare_arxiv_pubmed([str(original_release)], str(tmp_path / "o"))
    # the failed split leaves no partial files behind
    assert not (tmp_path / "o" / "dev-0.src").exists()
    (original_release / "test.txt").write_text(_record("a", ["x ."], ["<S> y . </S>"]) + "\n{not json\n")
    assert prepare_arxiv_pubmed_main(["--input", str(original_release), "--out", str(tmp_path / "p"), "--splits", "test"]) == 1
    assert "test.txt:2: not valid JSON" in capsys.readouterr().err


def test_abstract_sentences_formats():
    assert abstract_sentences(["<S> one . </S> <S> two . </S>", "<S> three . </S>"]) == ["one .", "two .", "three ."]
    assert abstract_sentences("one .\ntwo .\n") == ["one .", "two ."]  # Hugging Face copy
    assert abstract_sentences(None) == [] and abstract_sentences(["<S>  </S>"]) == []


def test_hf_without_datasets_is_a_clear_error(tmp_path, capsys, monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_datasets(name, *args, **kwargs):
        if name == "datasets":
            raise ImportError("no datasets")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_datasets)
    assert prepare_arxiv_pubmed_main(["--hf", "scientific_papers", "--config", "arxiv", "--out", str(tmp_path / "o")]) == 1
    assert "pip install datasets" in capsys.readouterr().err
