"""Reading the one-document-per-line files (deep_pyramidion/data/io.py): errors naming file and
line; only \n ends a line."""
import pytest

from deep_pyramidion.data import io as dio


def test_iter_lines_names_file_and_line(tmp_path):
    path = tmp_path / "bad.src"
    path.write_bytes(b"fine\nstill fine\r\nbad \xff here\n")
    with pytest.raises(dio.DataError, match=r"bad\.src:3: not valid UTF-8 \(byte 0xff at column 5\)"):
        list(dio.iter_lines(str(path)))
    with pytest.raises(dio.DataError, match=r"missing\.src: file not found"):
        dio.read_lines(str(tmp_path / "missing.src"))
    path.write_bytes(b"a\r\nb\x0bc\n")  # only \n ends a line, as in fairseq's binarizer
    assert dio.read_lines(str(path)) == ["a", "b\x0bc"]
