"""scripts/preprocess.py's output folder: a failing rerun (with --overwrite, reusing OUT/spm.model
too) leaves the previous folder exactly as it was, a successful rerun leaves nothing stale (no old
{split}.ids), and --data/--out that are the same place are refused before any work."""
import contextlib
import io

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from deep_pyramidion.data import binarize
from deep_pyramidion.data.cli import preprocess_main
from deep_pyramidion.data.io import DataError
from tests.integration.test_preprocess import SIZES, write_corpus
from tests.support.checksums import siblings, tree_digest


def run(argv):
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        rc = preprocess_main(argv)
    return rc, err.getvalue()


@pytest.fixture
def built(tmp_path):
    data = write_corpus(tmp_path / "text")
    out = tmp_path / "bin"
    assert run(["--data", str(data), "--out", str(out), "--vocab-size", "200"])[0] == 0
    return data, out


def test_failing_rerun_reusing_out_spm_model_leaves_everything(built, monkeypatch):
    data, out = built
    before = tree_digest(out)

    def broken(*args, **kwargs):  # fails after the model was copied and the text encoded
        raise DataError("fairseq-preprocess failed (exit 1): simulated")

    monkeypatch.setattr(binarize, "run_fairseq_preprocess", broken)
    rc, err = run(["--data", str(data), "--out", str(out), "--spm-model", str(out / "spm.model"), "--overwrite"])
    assert rc == 1 and err.strip().splitlines()[-1] == "error: fairseq-preprocess failed (exit 1): simulated"
    assert tree_digest(out) == before
    assert siblings(out) == ["bin", "text"]
    monkeypatch.undo()
    # and the reuse itself works: same model, same dictionary
    assert run(["--data", str(data), "--out", str(out), "--spm-model", str(out / "spm.model"), "--overwrite"])[0] == 0
    after = tree_digest(out)
    assert after[str(out / "spm.model")] == before[str(out / "spm.model")]
    assert after[str(out / "dict.src.txt")] == before[str(out / "dict.src.txt")]


def test_interrupted_rerun_leaves_everything(built, monkeypatch):
    data, out = built
    before = tree_digest(out)

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(binarize, "encode_files", interrupted)
    rc, err = run(["--data", str(data), "--out", str(out), "--vocab-size", "100", "--overwrite"])
    assert rc == 130 and err.strip().splitlines()[-1] == "error: interrupted"
    assert tree_digest(out) == before and siblings(out) == ["bin", "text"]


def test_rerun_from_text_without_ids_leaves_no_old_ids(built):
    data, out = built
    assert (out / "train.ids").exists()
    for split in SIZES:
        (data / f"{split}.ids").unlink()
    assert run(["--data", str(data), "--out", str(out), "--vocab-size", "200", "--overwrite"])[0] == 0
    assert not list(out.glob("*.ids"))
    assert binarize.binarized_length(str(out / "test-A.src-tgt.src")) == SIZES["test-A"]


@pytest.mark.parametrize("out_of", ["same", "parent"])
def test_data_and_out_in_the_same_place_are_refused_before_any_work(tmp_path, out_of, monkeypatch):
    data = write_corpus(tmp_path / "text")

    def no_work(*args, **kwargs):
        raise AssertionError("work started before the refusal")

    monkeypatch.setattr(binarize, "check_text_splits", no_work)
    out = data if out_of == "same" else tmp_path
    before = tree_digest(tmp_path)
    rc, err = run(["--data", str(data), "--out", str(out), "--vocab-size", "100", "--overwrite"])
    assert rc == 1
    last = err.strip().splitlines()[-1]
    assert "--data" in last and "--out" in last
    assert tree_digest(tmp_path) == before


def test_out_holding_other_files_is_refused(tmp_path):
    data = write_corpus(tmp_path / "text")
    out = tmp_path / "bin"
    out.mkdir()
    (out / "checkpoint_best.pt").write_bytes(b"weights")
    rc, err = run(["--data", str(data), "--out", str(out), "--vocab-size", "100"])
    assert rc == 1 and "checkpoint_best.pt" in err and (out / "checkpoint_best.pt").read_bytes() == b"weights"


@pytest.fixture(scope="module")
def baseline(tmp_path_factory):
    root = tmp_path_factory.mktemp("base")
    data = write_corpus(root / "text")
    out = root / "bin"
    assert run(["--data", str(data), "--out", str(out), "--vocab-size", "200"])[0] == 0
    return data, out


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(odd=st.binary(min_size=1, max_size=40), split=st.sampled_from(["train", "dev-0", "test-A"]),
       lang=st.sampled_from(["src", "tgt", "ids"]), at=st.floats(0, 1))
def test_odd_bytes_in_the_text_binarize_or_fail_in_one_line_leaving_the_old_folder(
        tmp_path_factory, baseline, odd, split, lang, at):
    import shutil

    root = tmp_path_factory.mktemp("fz")
    data, out = root / "text", root / "bin"
    shutil.copytree(baseline[0], data)
    shutil.copytree(baseline[1], out)
    path = data / f"{split}.{lang}"
    raw = path.read_bytes()
    cut = int(at * len(raw))
    path.write_bytes(raw[:cut] + odd + raw[cut:])
    inputs, old = tree_digest(data), tree_digest(out)
    rc, err = run(["--data", str(data), "--out", str(out), "--vocab-size", "200", "--overwrite"])
    assert tree_digest(data) == inputs and siblings(out) == ["bin", "text"]
    if rc == 0:
        counts = binarize.check_text_splits(str(data), list(SIZES))
        for s, n in counts.items():
            assert binarize.binarized_length(str(out / f"{s}.src-tgt.src")) == n
    else:
        assert rc == 1 and tree_digest(out) == old
        errors = [line for line in err.splitlines() if line.startswith("error: ")]
        assert len(errors) == 1 and err.rstrip().endswith(errors[0]) and "Traceback" not in err
