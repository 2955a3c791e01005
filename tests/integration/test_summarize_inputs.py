"""pyramidion-summarize and summarize() against odd input: documents are lines by the project's
one rule (a line ends at \\n), undecodable bytes and empty lines are refused naming the line and
byte before the model loads, a lone surrogate is a clear ValueError, and every run either writes
one summary per line or ends with one error line, no traceback."""
import io
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from deep_pyramidion.data.io import read_document_lines
from deep_pyramidion.fairseq_plugin.cli import summarize_main
from tests.support.paths import console_script

PREMOVE = Path(__file__).resolve().parents[1] / "data" / "premove"
BASE = ["--checkpoint", str(PREMOVE / "topk.pt"), "--data", str(PREMOVE), "--no-bpe",
        "--beam", "1", "--max-len-b", "4"]


def cli(stdin: bytes, *extra):
    return subprocess.run([console_script("pyramidion-summarize"), *BASE, *extra, "-"],
                          input=stdin, capture_output=True, timeout=300)


def test_undecodable_stdin_names_line_and_byte():
    proc = cli(b"w1 w2 w3\nw4 \xff w5\n")
    err = proc.stderr.decode()
    assert proc.returncode == 1 and "Traceback" not in err
    last = err.strip().splitlines()[-1]
    assert last.startswith("error: <stdin>:2: not valid UTF-8") and "byte offset 12" in last
    assert proc.stdout == b""


def test_a_lone_carriage_return_is_part_of_the_line():
    data = b"w1 w2\rw3 w4\nw5 w6\r\nw7\n"
    proc = cli(data)
    assert proc.returncode == 0, proc.stderr.decode()[-2000:]
    assert len(proc.stdout.decode().splitlines()) == 3 == len(read_document_lines(io.BytesIO(data)))


def test_closed_stdout_ends_quietly(tmp_path):
    docs = tmp_path / "docs.txt"
    docs.write_text("".join(f"w{i} w{i + 1} w{i + 2}\n" for i in range(40)))
    proc = subprocess.run(f"{console_script('pyramidion-summarize')} {' '.join(BASE)} {docs} "
                          "| head -n 1", shell=True, capture_output=True, text=True, timeout=300)
    assert len(proc.stdout.splitlines()) == 1 and "Traceback" not in proc.stderr


def test_lone_surrogate_is_a_clear_error():
    from deep_pyramidion.hub import from_pretrained

    hub = from_pretrained(str(PREMOVE), checkpoint_file="topk.pt", bpe=None, cpu=True,
                          source_lang="src", target_lang="tgt")
    with pytest.raises(ValueError, match=r"texts\[1\]: not valid Unicode text .*character 3"):
        hub.summarize(["w1 w2", "w3 \udc80 w4"], beam=1, max_len_b=3)


@pytest.fixture
def stdin_bytes(monkeypatch):
    def feed(data: bytes):
        monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data)))
    return feed


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.lists(st.sampled_from([b"w1", b"w2 w3", b" ", b"\r", b"\n", b"\r\n", b"\xff",
                                      b"\xe2\x82", b"\x00", "\u2028".encode(), b"\t"]),
                     max_size=12).map(b"".join))
def test_any_bytes_give_one_summary_per_line_or_one_error(data, stdin_bytes, capsys):
    stdin_bytes(data)
    code = summarize_main([*BASE, "-"])
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    try:
        lines = read_document_lines(io.BytesIO(data))
    except Exception:
        lines = None
    if lines is not None and all(line.strip() for line in lines):
        assert code == 0 and len(out.splitlines()) == len(lines)
    else:
        assert code == 1 and out == ""
        assert err.strip().splitlines()[-1].startswith("error: <stdin>")
