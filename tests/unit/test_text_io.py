"""The one rule for what a document line is (deep_pyramidion/data/io.py), for files and streams
alike, and errors that name the source, line and byte offset of undecodable input."""
import io
import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from deep_pyramidion.data import io as dio
from deep_pyramidion.data.io import DataError, load_json_file, read_document_lines

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def test_iter_lines_names_file_and_line(tmp_path):
    path = tmp_path / "bad.src"
    path.write_bytes(b"fine\nstill fine\r\nbad \xff here\n")
    with pytest.raises(dio.DataError, match=r"bad\.src:3: not valid UTF-8 \(byte 0xff at column 5\)"):
        list(dio.iter_lines(str(path)))
    with pytest.raises(dio.DataError, match=r"missing\.src: file not found"):
        dio.read_lines(str(tmp_path / "missing.src"))
    path.write_bytes(b"a\r\nb\x0bc\n")  # only \n ends a line, as in fairseq's binarizer
    assert dio.read_lines(str(path)) == ["a", "b\x0bc"]


def expected_lines(data: bytes):
    """The rule, written independently: split at \n, drop one \r before each \n, a last line
    without \n counts, a leading UTF-8 byte order mark is dropped."""
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    if not data:
        return []
    parts = data.split(b"\n")
    if parts[-1] == b"":
        parts = parts[:-1]
        ended = [True] * len(parts)
    else:
        ended = [True] * (len(parts) - 1) + [False]
    return [(p[:-1] if e and p.endswith(b"\r") else p).decode("utf-8") for p, e in zip(parts, ended)]


line_bytes = st.lists(
    st.one_of(st.text(alphabet=st.characters(blacklist_categories=["Cs"]), max_size=8).map(str.encode),
              st.sampled_from([b"\r", b"\n", b"\r\n", b"\x0b", b"\x0c", b"\x1c", "\u2028".encode(), "\x85".encode()])),
    max_size=20,
).map(b"".join)


@FUZZ
@given(data=line_bytes)
def test_files_and_streams_split_lines_by_the_same_rule(tmp_path, data):
    path = tmp_path / "doc.txt"
    path.write_bytes(data)
    want = expected_lines(data)
    assert read_document_lines(str(path)) == want
    assert read_document_lines(io.BytesIO(data)) == want
    # a text stream with a binary buffer (sys.stdin) is read through its buffer, not its newlines
    assert read_document_lines(io.TextIOWrapper(io.BytesIO(data), encoding="utf-8")) == want
    # the count is the number of \n, plus a last line without one
    body = data[3:] if data.startswith(b"\xef\xbb\xbf") else data
    assert len(want) == body.count(b"\n") + (1 if body and not body.endswith(b"\n") else 0)


def test_lone_carriage_return_stays_inside_the_line(tmp_path):
    data = b"one\rstill one\r\ntwo\n\rthree\r"
    assert read_document_lines(io.BytesIO(data)) == ["one\rstill one", "two", "\rthree\r"]
    # universal newlines (open(path) in text mode) would see 5 lines in the same bytes
    path = tmp_path / "d.txt"
    path.write_bytes(data)
    assert len(open(path, encoding="utf-8").readlines()) == 5


def test_a_text_stream_without_a_buffer_is_a_programming_error():
    with pytest.raises(TypeError, match="binary stream"):
        read_document_lines(io.StringIO("a\n"))


@FUZZ
@given(good=st.lists(st.text(alphabet="ab \r", max_size=6), max_size=5),
       bad=st.sampled_from([b"\xff", b"\xc3", b"\xe9t", b"\xed\xa0\x80", b"\xf8\x88\x80\x80\x80"]),
       prefix=st.text(alphabet="xyz", max_size=5))
def test_undecodable_input_names_source_line_and_byte_offset(tmp_path, good, bad, prefix):
    head = "".join(g + "\n" for g in good).encode()
    data = head + prefix.encode() + bad + b" tail\nlast\n"
    path = tmp_path / "bad.txt"
    path.write_bytes(data)
    for source, name in ((str(path), str(path)), (io.BytesIO(data), "<stdin>")):
        with pytest.raises(DataError) as err:
            read_document_lines(source, name="<stdin>" if name == "<stdin>" else None)
        message = str(err.value)
        match = re.match(rf"^{re.escape(name)}:(\d+): not valid UTF-8 \(byte 0x([0-9a-f]{{2}}) at column (\d+)\); "
                         rf"byte offset (\d+) of {re.escape(name)}", message)
        assert match, message
        lineno, byte, column, offset = int(match[1]), int(match[2], 16), int(match[3]), int(match[4])
        assert lineno == len(good) + 1
        assert data[offset] == byte and column - 1 == len(prefix) and offset == len(head) + column - 1
        try:
            data[: offset].decode("utf-8")
        except UnicodeDecodeError:  # pragma: no cover - the offset must be the first bad byte
            pytest.fail(f"bytes before offset {offset} do not decode")


def test_stdin_is_named_in_messages(monkeypatch):
    class FakeStdin(io.TextIOWrapper):
        pass

    stdin = FakeStdin(io.BytesIO(b"ok\n\xff\n"), encoding="utf-8")
    monkeypatch.setattr("sys.stdin", stdin)
    with pytest.raises(DataError, match=r"^<stdin>:2: not valid UTF-8 .*byte offset 3 of <stdin>"):
        read_document_lines(stdin)


def test_json_file_errors_name_line_and_byte_offset(tmp_path):
    path = tmp_path / "paper.json"
    path.write_bytes(b'{"a":\n "caf\xe9"}\n')
    with pytest.raises(DataError, match=r"paper\.json:2: not valid UTF-8 \(byte 0xe9 at column 6\); byte offset 11"):
        load_json_file(str(path))
    path.write_bytes(b'\xef\xbb\xbf{"a": [1, 2}')
    with pytest.raises(DataError, match=r"paper\.json:1: not valid JSON"):
        load_json_file(str(path))
    path.write_bytes(b"[" * 100000)
    with pytest.raises(DataError, match="not valid JSON"):
        load_json_file(str(path))
    path.write_bytes(b'\xef\xbb\xbf{"a": 1}')
    assert load_json_file(str(path)) == {"a": 1}


def test_undecodable_paper_json_is_skipped_naming_line_and_byte_offset(tmp_path):
    from deep_pyramidion.data.aclsum import prepare_aclsum
    from tests.support.prepared import fake_aclsum, paper

    data = fake_aclsum(tmp_path / "ds", {"train": [("ok", paper(["Body."], "Abs.")),
                                                  ("bad", b'{"abstract":\n  "caf\xe9"}')]})
    result = prepare_aclsum(str(tmp_path / "out"), str(data))
    (skip,) = result.skips.skips
    assert skip.doc_id == "bad" and skip.where.endswith("bad.json")
    assert skip.reason.startswith("line 2: not valid UTF-8 (byte 0xe9 at column 7); byte offset 19")
