"""The data scripts as processes (scripts/prepare_aclsum.py, prepare_arxiv_pubmed.py,
preprocess.py, and the generate-output checker): --help documents the exit codes, an expected
failure ends with one `error: ...` line and no traceback, usage errors exit 2, a closed stdout
ends quietly."""
import subprocess
import sys

import pytest

from tests.support.checksums import tree_digest
from tests.support.paths import REPO, SCRIPTS
from tests.support.prepared import fake_aclsum, paper
from tests.support.processes import run_process

SCRIPTS_ = ["prepare_aclsum.py", "prepare_arxiv_pubmed.py", "preprocess.py", "score.py"]


def run(argv):
    """A script (or ``-m module``) of the checkout, run with this python."""
    return run_process([sys.executable, *argv], cwd=REPO)


@pytest.mark.parametrize("script", SCRIPTS_ + ["-m deep_pyramidion.eval.generate_output"])
def test_help_lists_the_exit_codes(script):
    argv = script.split() if script.startswith("-m") else [str(SCRIPTS / script)]
    proc = run(argv + ["--help"])
    assert proc.returncode == 0
    text = " ".join(proc.stdout.split())
    assert "0 ok" in text or "0 complete" in text
    for code in ("1 ", "2 usage"):
        assert code in text, (script, text[-400:])


def one_error_line(proc):
    assert "Traceback" not in proc.stderr, proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("error: ") or ": error: " in last, last
    return last


def test_bad_inputs_end_with_one_line(tmp_path):
    data = fake_aclsum(tmp_path / "ds", {"train": [("a", paper(["B."], "A."))], "val": [], "test": []})
    (data / "test.jsonl").write_bytes(b"\xff\xfe not utf-8\n")
    before = tree_digest(data)
    cases = [
        ([str(SCRIPTS / "prepare_aclsum.py"), "--data-dir", str(data), "--out", str(tmp_path / "o")], 1,
         "test.jsonl:1: not valid UTF-8"),
        ([str(SCRIPTS / "prepare_aclsum.py"), "--data-dir", str(tmp_path / "nope"), "--out", str(tmp_path / "o")], 1,
         "--data-dir"),
        ([str(SCRIPTS / "prepare_arxiv_pubmed.py"), "--input", str(data), "--out", str(tmp_path / "o")], 1,
         "test.jsonl:1: not valid UTF-8"),  # its .jsonl files are taken as train/val/test
        ([str(SCRIPTS / "prepare_arxiv_pubmed.py"), "--input", str(data / "paper_jsons"), "--out",
          str(tmp_path / "o")], 1, "missing split file for 'train'"),
        ([str(SCRIPTS / "preprocess.py"), "--data", str(data), "--out", str(tmp_path / "o")], 1,
         "train.src: missing split file"),
        ([str(SCRIPTS / "preprocess.py"), "--check", str(tmp_path)], 1, "spm.model: sentencepiece model not found"),
        ([str(SCRIPTS / "preprocess.py"), "--data", str(data)], 2, "--data and --out are required"),
        ([str(SCRIPTS / "prepare_arxiv_pubmed.py"), "--input", str(data), "--out", "o", "--splits", "nope"], 2,
         "--splits"),
        ([str(SCRIPTS / "score.py"), "--hyp", str(data / "train.jsonl")], 2, "--hyp needs --ref"),
        (["-m", "deep_pyramidion.eval.generate_output", "--check", str(data / "train.jsonl")], 1,
         "no H- or D- lines"),
    ]
    for argv, code, fragment in cases:
        proc = run(argv)
        assert proc.returncode == code, (argv, proc.stderr)
        assert fragment in one_error_line(proc), (argv, proc.stderr)
    assert tree_digest(data) == before
    assert not (tmp_path / "o").exists()


def test_closed_stdout_ends_quietly_for_the_prepare_script(tmp_path):
    data = fake_aclsum(tmp_path / "ds", {"train": [("a", paper(["B."], "A."))], "val": [], "test": []})
    proc = subprocess.Popen([sys.executable, str(SCRIPTS / "prepare_aclsum.py"), "--data-dir", str(data),
                             "--out", str(tmp_path / "o")], stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=REPO)
    proc.stdout.close()
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 141
    assert "Traceback" not in err and "BrokenPipe" not in err
    assert (tmp_path / "o" / "train.ids").read_text() == "a\n"  # the work itself was done
