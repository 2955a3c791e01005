"""The prepare steps' output folder: built beside the old one and swapped in only on success, so a
failing rerun leaves the previous output exactly as it was, a successful one leaves nothing stale,
and input/output folders that are the same place (or nested so that replacing the output would
delete the input) are refused up front naming both flags."""
import contextlib
import io
import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from deep_pyramidion.data.cli import prepare_aclsum_main, prepare_arxiv_pubmed_main
from deep_pyramidion.data.output import StagedDir, owned_by
from tests.support.checksums import siblings, tree_digest
from tests.support.prepared import fake_aclsum, lines, paper, record

FUZZ = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def run(main, argv):
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        rc = main(argv)
    return rc, err.getvalue()


def _dataset(root, n_train=3):
    return fake_aclsum(root, {"train": [(f"t{i}", paper([f"Body {i}."], f"Abstract {i}.")) for i in range(n_train)],
                              "val": [("v", paper(["B."], "A."))], "test": [("x", paper(["B."], "A."))]})


def test_failing_rerun_leaves_the_previous_output_exactly_as_it_was(tmp_path):
    data = _dataset(tmp_path / "ds")
    out = tmp_path / "out"
    assert run(prepare_aclsum_main, ["--data-dir", str(data), "--out", str(out)])[0] == 0
    before = tree_digest(out)
    # the test list breaks halfway through the run (after train and dev-0 were written)
    with open(data / "test.jsonl", "ab") as f:
        f.write(b"{not json\n")
    rc, err = run(prepare_aclsum_main, ["--data-dir", str(data), "--out", str(out)])
    assert rc == 1 and "test.jsonl:2: not valid JSON" in err
    assert tree_digest(out) == before
    assert siblings(out) == ["ds", "out"]  # the half-built folder is gone


def test_successful_rerun_leaves_nothing_stale(tmp_path):
    data = _dataset(tmp_path / "ds")
    out = tmp_path / "out"
    (data / "paper_jsons" / "t1.json").write_text(json.dumps(paper([""], "A.")))  # skipped: empty body
    assert run(prepare_aclsum_main, ["--data-dir", str(data), "--out", str(out)])[0] == 0
    assert (out / "skipped.tsv").exists()
    (data / "paper_jsons" / "t1.json").write_text(json.dumps(paper(["Now a body."], "A.")))
    (out / "train.src.partial").write_text("left by a crash of an old version\n")
    assert run(prepare_aclsum_main, ["--data-dir", str(data), "--out", str(out)])[0] == 0
    assert sorted(p.name for p in out.iterdir()) == sorted(
        [f"{s}.{e}" for s in ("train", "dev-0", "test-A") for e in ("src", "tgt", "ids")] + ["prepare.json"])
    assert lines(out / "train.ids") == ["t0", "t1", "t2"]


def test_rerun_with_fewer_splits_drops_the_old_ones(tmp_path):
    root = tmp_path / "arxiv"
    root.mkdir()
    for split in ("train", "val", "test"):
        (root / f"{split}.txt").write_text(record(f"{split}1", ["a ."], ["<S> b . </S>"]) + "\n")
    out = tmp_path / "out"
    assert run(prepare_arxiv_pubmed_main, ["--input", str(root), "--out", str(out)])[0] == 0
    assert run(prepare_arxiv_pubmed_main, ["--input", str(root), "--out", str(out), "--splits", "test"])[0] == 0
    assert sorted(p.name for p in out.iterdir()) == ["prepare.json", "test-A.ids", "test-A.src", "test-A.tgt"]


@pytest.mark.parametrize("where", ["same", "input inside output", "split file inside output"])
def test_input_and_output_in_the_same_place_are_refused_up_front(tmp_path, where):
    root = tmp_path / "arxiv"
    root.mkdir()
    for split in ("train", "val", "test"):
        (root / f"{split}.txt").write_text(record(f"{split}1", ["a ."], ["<S> b . </S>"]) + "\n")
    out = {"same": root, "input inside output": tmp_path, "split file inside output": tmp_path}[where]
    argv = ["--input", str(root), "--out", str(out)]
    if where == "split file inside output":
        argv = ["--input"] + [str(root / f"{s}.txt") for s in ("train", "val", "test")] + ["--out", str(root)]
    before = tree_digest(tmp_path)
    rc, err = run(prepare_arxiv_pubmed_main, argv)
    assert rc == 1
    last = err.strip().splitlines()[-1]
    assert last.startswith("error: --input") and "--out" in last
    assert tree_digest(tmp_path) == before


def test_aclsum_data_dir_inside_out_is_refused(tmp_path):
    data = _dataset(tmp_path / "out" / "ds")
    before = tree_digest(tmp_path)
    rc, err = run(prepare_aclsum_main, ["--data-dir", str(data), "--out", str(tmp_path / "out")])
    assert rc == 1 and "--data-dir" in err and "--out" in err
    assert tree_digest(tmp_path) == before


def test_a_folder_of_other_files_or_a_file_is_not_replaced(tmp_path):
    data = _dataset(tmp_path / "ds")
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.md").write_text("my notes\n")
    rc, err = run(prepare_aclsum_main, ["--data-dir", str(data), "--out", str(out)])
    assert rc == 1 and "notes.md" in err and (out / "notes.md").read_text() == "my notes\n"
    target = tmp_path / "file"
    target.write_text("x")
    rc, err = run(prepare_aclsum_main, ["--data-dir", str(data), "--out", str(target)])
    assert rc == 1 and "is not a folder" in err and target.read_text() == "x"


def test_interrupt_keeps_the_old_folder_and_removes_the_new_one(tmp_path):
    final = tmp_path / "out"
    final.mkdir()
    (final / "a.ids").write_text("old\n")
    with pytest.raises(KeyboardInterrupt):
        with StagedDir(str(final), owned_by(patterns=[r".+\.ids"])) as stage:
            (tmp_path / "stage_seen").write_text(stage)
            (Path(stage) / "a.ids").write_text("new\n")
            raise KeyboardInterrupt
    assert (final / "a.ids").read_text() == "old\n" and siblings(final) == ["out", "stage_seen"]


def test_leftovers_of_a_killed_run_are_removed(tmp_path):
    final = tmp_path / "out"
    dead = tmp_path / ".out.partial-999999999-abc"  # no such process
    dead.mkdir()
    (dead / "x.ids").write_text("half\n")
    with StagedDir(str(final), owned_by(patterns=[r".+\.ids"])) as stage:
        (Path(stage) / "x.ids").write_text("new\n")
    assert siblings(final) == ["out"] and (final / "x.ids").read_text() == "new\n"


@FUZZ
@given(paper_bytes=st.binary(max_size=120), list_bytes=st.binary(max_size=80), strict=st.booleans())
def test_odd_bytes_prepare_or_fail_in_one_line_leaving_inputs_and_old_output(tmp_path_factory, paper_bytes,
                                                                              list_bytes, strict):
    root = tmp_path_factory.mktemp("prep")
    data = _dataset(root / "ds")
    out = root / "out"
    assert run(prepare_aclsum_main, ["--data-dir", str(data), "--out", str(out)])[0] == 0
    (data / "paper_jsons" / "t1.json").write_bytes(paper_bytes)
    with open(data / "val.jsonl", "ab") as f:
        f.write(list_bytes)
    inputs, old = tree_digest(data), tree_digest(out)
    rc, err = run(prepare_aclsum_main, ["--data-dir", str(data), "--out", str(out)] + (["--strict"] if strict else []))
    assert tree_digest(data) == inputs
    assert siblings(out) == ["ds", "out"]
    if rc == 0:
        manifest = json.loads((out / "prepare.json").read_text())
        assert sum(manifest["counts"].values()) + len(manifest["skipped"]) == sum(manifest["listed"].values())
    else:
        assert rc == 1 and tree_digest(out) == old
        errors = [line for line in err.splitlines() if line.startswith("error: ")]
        assert len(errors) == 1 and err.rstrip().endswith(errors[0]) and "Traceback" not in err


def test_swap_without_renameat2_and_a_foreign_file_appearing_meanwhile(tmp_path, monkeypatch):
    from deep_pyramidion.plumbing import files as output

    final = tmp_path / "out"
    final.mkdir()
    (final / "a.ids").write_text("old\n")
    owned = owned_by(patterns=[r".+\.ids"])
    monkeypatch.setattr(output, "_renameat2_exchange", lambda a, b: False)  # rename aside, rename in
    with StagedDir(str(final), owned) as stage:
        (Path(stage) / "b.ids").write_text("new\n")
    assert sorted(p.name for p in final.iterdir()) == ["b.ids"] and siblings(final) == ["out"]
    with pytest.raises(output.DataError, match="notes.txt"):
        with StagedDir(str(final), owned) as stage:
            (Path(stage) / "c.ids").write_text("newer\n")
            (final / "notes.txt").write_text("written by someone else during the run\n")
    assert sorted(p.name for p in final.iterdir()) == ["b.ids", "notes.txt"] and siblings(final) == ["out"]
