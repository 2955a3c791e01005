"""Expected failures through fairseq's own command lines end with one line naming the cause
(patches.py: one_line_errors), never a traceback: a bad model flag, a damaged checkpoint, a
dictionary that does not fit the checkpoint. A bug keeps its traceback."""
import shutil
import sys
from pathlib import Path

import pytest

from tests.support.paths import USER_DIR, console_script
from tests.support.processes import run_process

PREMOVE = Path(__file__).resolve().parents[1] / "data" / "premove"


def run(argv, cwd):
    return run_process(argv, cwd=cwd)


def assert_one_line(proc, *needles):
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("error: "), proc.stderr[-3000:]
    for needle in needles:
        assert needle in last, last


@pytest.fixture
def data(tmp_path):
    folder = tmp_path / "data"
    folder.mkdir()
    for lang in ("src", "tgt"):
        shutil.copyfile(PREMOVE / f"dict.{lang}.txt", folder / f"dict.{lang}.txt")
    return folder


@pytest.mark.parametrize("flag, value, needle", [
    ("--topk-softmax-base", "nan", "--topk-softmax-base must be a finite number > 1"),
    ("--topk-softmax-base", "inf", "--topk-softmax-base must be a finite number > 1"),
    ("--enc-layers-and-token-width", "{0: 64, 0: 16}", "layer 0 is listed twice"),
    ("--chunk-size", "0", "--chunk-size must be an integer >= 1"),
])
def test_bad_model_flag_through_fairseq_train(data, tmp_path, flag, value, needle):
    proc = run([console_script("fairseq-train"), str(data), "--user-dir", USER_DIR, "--task",
                "translation", "--arch", "pyramidion_tiny", "--source-lang", "src",
                "--target-lang", "tgt", "--optimizer", "adam", "--lr", "1e-3", "--max-tokens",
                "1000", "--cpu", "--save-dir", str(tmp_path / "ckpt"), flag, value], tmp_path)
    assert_one_line(proc, needle)
    assert not (tmp_path / "ckpt").exists() or not list((tmp_path / "ckpt").iterdir())


def test_conflicting_legacy_flag_through_fairseq_train(data, tmp_path):
    proc = run([console_script("fairseq-train"), str(data), "--user-dir", USER_DIR, "--task",
                "translation", "--arch", "pyramidion_tiny", "--source-lang", "src",
                "--target-lang", "tgt", "--optimizer", "adam", "--lr", "1e-3", "--max-tokens",
                "1000", "--cpu", "--use-sparse-attn", "only_blockwise", "--encoder-pooling", "topk",
                "--save-dir", str(tmp_path / "ckpt")], tmp_path)
    assert_one_line(proc, "--use-sparse-attn only_blockwise", "--encoder-pooling topk")


def generate(data, checkpoint, cwd):
    return run([console_script("fairseq-generate"), str(data), "--user-dir", USER_DIR, "--path",
                str(checkpoint), "--source-lang", "src", "--target-lang", "tgt", "--gen-subset",
                "valid", "--cpu"], cwd)


def test_dictionary_that_does_not_fit_the_checkpoint(data, tmp_path):
    for lang in ("src", "tgt"):
        with open(data / f"dict.{lang}.txt", "a") as f:
            f.write("extra1 1\nextra2 1\n")
    assert_one_line(generate(data, PREMOVE / "topk.pt", tmp_path), "token embeddings have",
                    "use the data folder")


def test_damaged_checkpoint_through_fairseq_generate(data, tmp_path):
    broken = tmp_path / "checkpoint_best.pt"
    broken.write_bytes((PREMOVE / "topk.pt").read_bytes()[:5000])
    assert_one_line(generate(data, broken, tmp_path), str(broken), "truncated")


def test_a_bug_keeps_its_traceback(tmp_path):
    code = ("import fairseq, deep_pyramidion.fairseq_plugin\n"
            "raise KeyError('not an expected failure')\n")
    proc = run_process([sys.executable, "-c", code])
    assert proc.returncode == 1 and "Traceback" in proc.stderr and "KeyError" in proc.stderr
