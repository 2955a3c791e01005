"""--max-source-positions has a checked limit (deep_pyramidion/limits.py): a typo such as
100000000 is a usage error naming the flag and the bound, given before anything is read or
allocated (the README's promise), in pyramidion-convert, pyramidion-summarize and
from_pretrained."""
from pathlib import Path

import pytest

from deep_pyramidion.limits import MAX_SOURCE_POSITIONS
from tests.support.paths import console_script
from tests.support.processes import run_process

PREMOVE = Path(__file__).resolve().parents[1] / "data" / "premove"


def run(argv, stdin=""):
    return run_process(argv, stdin=stdin)


@pytest.mark.parametrize("value", ["100000000", str(MAX_SOURCE_POSITIONS + 1)])
def test_summarize_refuses_positions_above_the_limit(value):
    proc = run([console_script("pyramidion-summarize"), "--checkpoint", str(PREMOVE / "topk.pt"),
                "--data", str(PREMOVE), "--no-bpe", "--max-source-positions", value, "-"],
               stdin="w1 w2 w3\n")
    assert proc.returncode == 2, proc.stderr[-2000:]
    last = proc.stderr.strip().splitlines()[-1]
    assert f"--max-source-positions {value}: at most {MAX_SOURCE_POSITIONS}" in last
    assert "Traceback" not in proc.stderr and proc.stdout == ""


def test_convert_refuses_positions_above_the_limit_before_reading_the_source(tmp_path):
    # SRC_DIR does not even exist: the bound is checked first
    proc = run([console_script("pyramidion-convert"), str(tmp_path / "no-such-bart"),
                str(tmp_path / "out"), "--max-source-positions", "100000000"])
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert f"at most {MAX_SOURCE_POSITIONS}" in proc.stderr.strip().splitlines()[-1]
    assert "Traceback" not in proc.stderr and not (tmp_path / "out").exists()


def test_from_pretrained_refuses_positions_above_the_limit():
    from deep_pyramidion.hub import from_pretrained

    with pytest.raises(ValueError, match=f"max_source_positions 100000000: at most "
                                         f"{MAX_SOURCE_POSITIONS}"):
        from_pretrained(str(PREMOVE), checkpoint_file="topk.pt", bpe=None,
                        max_source_positions=100_000_000)


def test_a_long_but_sane_value_is_accepted():
    proc = run([console_script("pyramidion-summarize"), "--checkpoint", str(PREMOVE / "topk.pt"),
                "--data", str(PREMOVE), "--no-bpe", "--beam", "1", "--max-len-b", "3",
                "--max-source-positions", "4096", "-"], stdin="w1 w2 w3\n")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert len(proc.stdout.splitlines()) == 1
