"""The line readers under their earlier import path: they live in plumbing/lines.py (the one rule
for a document line, strict UTF-8 with line and byte offset, JSON lines) and plumbing/errors.py
(:class:`DataError`), below every room. Kept for the code that imports them from here
(``from deep_pyramidion.data.io import DataError, read_document_lines``)."""
from deep_pyramidion.plumbing.errors import DataError
from deep_pyramidion.plumbing.lines import (
    Source, decode_line, iter_document_lines, iter_json_values, iter_jsonl, iter_lines,
    load_json_file, normalize_whitespace, read_document_lines, read_lines, source_name,
    truncate_words,
)

__all__ = [
    "DataError", "decode_line", "iter_document_lines", "iter_json_values", "iter_jsonl",
    "iter_lines", "load_json_file", "normalize_whitespace", "read_document_lines", "read_lines",
    "Source", "source_name", "truncate_words"
]
