"""Reading the one-document-per-line text files, with errors that name source, line and byte.

One rule for what a document line is, shared by every reader of the project (files and stdin
alike): a line ends at ``\\n``; a ``\\r`` just before that ``\\n`` is dropped (files written on
Windows); any other ``\\r`` is part of the line. Python's universal newlines (``open(path)`` in
text mode, ``io.TextIOWrapper``) would also end a line at a lone ``\\r``, so two tools could count
a different number of documents in the same bytes and pair summaries with the wrong documents.
That is why everything here reads bytes and splits them itself.

Every reader decodes strictly as UTF-8 and reports undecodable input as
``SOURCE:LINE: not valid UTF-8 (byte 0xff at column 3); byte offset 1234 of SOURCE; ...``, where
SOURCE is the path or the stream's name (``<stdin>``), LINE is 1-based, the column is the 1-based
byte of that line and the offset counts bytes from the start of the input, so the position can be
found with ``head -c`` or ``xxd -s`` whatever the file's other lines hold.
"""

import io
import json
import os
import sys
from typing import BinaryIO, Iterator, List, Optional, Tuple, Union

from .errors import DataError

Source = Union[str, "os.PathLike[str]", BinaryIO]

_BOM = b"\xef\xbb\xbf"


def source_name(source: Source, name: Optional[str] = None) -> str:
    """What messages call ``source``: ``name`` when given, else the path or the stream's name."""
    if name:
        return name
    if isinstance(source, (str, os.PathLike)):
        return os.fspath(source)
    stream_name = getattr(source, "name", None)
    if stream_name in (0, "<stdin>") or source is sys.stdin or source is getattr(sys.stdin, "buffer", None):
        return "<stdin>"
    return str(stream_name) if isinstance(stream_name, str) else "<stream>"


def decode_line(raw: bytes, name: str, lineno: int, offset: int) -> str:
    """``raw`` (one line, terminator removed) as text; :class:`DataError` naming source, line,
    column and byte offset when it is not UTF-8."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise DataError(
            f"{name}:{lineno}: not valid UTF-8 (byte 0x{raw[err.start]:02x} at column {err.start + 1}); "
            f"byte offset {offset + err.start} of {name}; convert the input to UTF-8"
        ) from None


def _binary_stream(stream) -> BinaryIO:
    if isinstance(stream, io.TextIOBase):
        buffer = getattr(stream, "buffer", None)
        if buffer is None:
            raise TypeError(
                "iter_document_lines reads bytes (so that only \\n ends a line): pass a path, a "
                "binary stream or sys.stdin.buffer, not a text stream"
            )
        return buffer
    return stream


def _open(path: str) -> BinaryIO:
    try:
        return open(path, "rb")
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except IsADirectoryError:
        raise DataError(f"{path}: is a directory, expected a file") from None
    except PermissionError:
        raise DataError(f"{path}: permission denied") from None
    except OSError as err:
        raise DataError(f"{path}: cannot read ({err.strerror or err})") from None


def iter_document_lines(source: Source, name: Optional[str] = None) -> Iterator[Tuple[int, str]]:
    """Yield ``(line_number, text)`` (1-based) for each line of ``source``, by the rule in the
    module docstring: lines end at ``\\n`` only, a ``\\r`` right before it is dropped, a UTF-8
    byte order mark at the very start is dropped, the last line needs no ``\\n``.

    ``source`` is a path (str or ``os.PathLike``) or a binary stream (``sys.stdin.buffer``, a
    file opened ``"rb"``, ``io.BytesIO``); a text stream that has a binary ``.buffer``
    (``sys.stdin``) is read through it. ``name`` is what messages call the source (default: the
    path, or ``<stdin>``). Raises :class:`DataError` naming the source when a file is missing or
    unreadable, and source, line, column and byte offset when a line is not valid UTF-8.
    Memory: one line at a time.
    """
    if isinstance(source, (str, os.PathLike)):
        path = os.fspath(source)
        with _open(path) as handle:
            yield from _iter_stream(handle, name or path)
        return
    yield from _iter_stream(_binary_stream(source), source_name(source, name))


def _iter_stream(handle: BinaryIO, name: str) -> Iterator[Tuple[int, str]]:
    offset = 0
    lineno = 0
    while True:
        try:
            raw = handle.readline()
        except OSError as err:
            raise DataError(f"{name}: read failed after line {lineno} ({err.strerror or err})") from None
        if not raw:
            return
        lineno += 1
        start = offset
        offset += len(raw)
        body = raw
        if body.endswith(b"\n"):
            body = body[:-1]
            if body.endswith(b"\r"):
                body = body[:-1]
        if lineno == 1 and body.startswith(_BOM):
            body = body[len(_BOM):]
            start += len(_BOM)
        yield lineno, decode_line(body, name, lineno, start)


def read_document_lines(source: Source, name: Optional[str] = None) -> List[str]:
    """Every line of ``source`` (see :func:`iter_document_lines`)."""
    return [text for _, text in iter_document_lines(source, name)]


def iter_lines(path: str) -> Iterator[Tuple[int, str]]:
    """``(line_number, text)`` for each line of a UTF-8 file: :func:`iter_document_lines` on a path."""
    return iter_document_lines(path)


def read_lines(path: str) -> List[str]:
    """All lines of a UTF-8 file (see :func:`iter_document_lines`)."""
    return read_document_lines(path)


def iter_json_values(path: str) -> Iterator[Tuple[int, object]]:
    """Yield ``(line_number, value)`` for each non-blank line of a JSON-lines file, whatever the
    value's type: the caller decides what a wrongly typed record means (skip or error)."""
    for lineno, text in iter_document_lines(path):
        if not text.strip():
            continue
        try:
            value = json.loads(text)
        except json.JSONDecodeError as err:
            raise DataError(f"{path}:{lineno}: not valid JSON ({err.msg} at column {err.colno})") from None
        except RecursionError:
            raise DataError(f"{path}:{lineno}: not valid JSON (nested too deeply)") from None
        yield lineno, value


def iter_jsonl(path: str) -> Iterator[Tuple[int, dict]]:
    """Yield ``(line_number, object)`` for each non-blank line of a JSON-lines file; a line that is
    valid JSON but not an object is an error naming file and line."""
    for lineno, obj in iter_json_values(path):
        if not isinstance(obj, dict):
            raise DataError(f"{path}:{lineno}: expected a JSON object, got {type(obj).__name__}")
        yield lineno, obj


def load_json_file(path: str) -> object:
    """The JSON value held by a whole file; :class:`DataError` naming the file, and the line and
    byte offset of undecodable or unparsable input."""
    with _open(path) as handle:
        try:
            raw = handle.read()
        except OSError as err:
            raise DataError(f"{path}: read failed ({err.strerror or err})") from None
    if raw.startswith(_BOM):
        raw = b" " * len(_BOM) + raw[len(_BOM):]  # keeps byte offsets; JSON ignores the spaces
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        line = raw[: err.start].count(b"\n") + 1
        column = err.start - (raw.rfind(b"\n", 0, err.start) + 1) + 1
        raise DataError(
            f"{path}:{line}: not valid UTF-8 (byte 0x{raw[err.start]:02x} at column {column}); "
            f"byte offset {err.start} of {path}"
        ) from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise DataError(f"{path}:{err.lineno}: not valid JSON ({err.msg} at column {err.colno})") from None
    except RecursionError:
        raise DataError(f"{path}: not valid JSON (nested too deeply)") from None


def normalize_whitespace(text: str) -> str:
    """Collapse every run of whitespace (newlines, tabs, Unicode separators) into one space."""
    return " ".join(text.split())


def truncate_words(text: str, max_words: Optional[int]) -> str:
    """The first ``max_words`` space-separated words of a normalised text (all when None)."""
    if max_words is None:
        return text
    tokens = text.split(" ")
    return text if len(tokens) <= max_words else " ".join(tokens[:max_words])
