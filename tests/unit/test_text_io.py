"""The one rule for what a document line is (deep_pyramidion/data/io.py), for files and streams
alike: a line ends at \n, a \r just before it is dropped, any other \r is part of the line."""
import io

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from deep_pyramidion.data import io as dio
from deep_pyramidion.data.io import read_document_lines

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
