"""Reading and writing the one-document-per-line text files, with errors that name file and line.

Every reader here decodes strictly as UTF-8 and reports the first bad line as ``PATH:LINE`` (1-based);
lines are split on ``\\n`` only (a stray ``\\r`` before it is dropped), which is how fairseq's
binarizer will read the same files later, so line numbers agree between the tools.
"""

import json
import logging
import os
from dataclasses import dataclass, field
from typing import Dict, Iterator, List, Optional, Tuple

logger = logging.getLogger(__name__)


class DataError(Exception):
    """Bad input data. The message names the file and, where there is one, the 1-based line."""


def iter_lines(path: str) -> Iterator[Tuple[int, str]]:
    """Yield ``(line_number, text)`` for each line of a UTF-8 file, without the line terminator.

    Raises :class:`DataError` naming the file (and line) when the file is missing or a line is not
    valid UTF-8. A UTF-8 byte order mark at the start of the file is dropped.
    """
    try:
        handle = open(path, "rb")
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except IsADirectoryError:
        raise DataError(f"{path}: is a directory, expected a file") from None
    with handle:
        for lineno, raw in enumerate(handle, 1):
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as err:
                raise DataError(
                    f"{path}:{lineno}: not valid UTF-8 (byte 0x{raw[err.start]:02x} at column "
                    f"{err.start + 1}); convert the file to UTF-8"
                ) from None
            if lineno == 1 and text.startswith("\ufeff"):
                text = text[1:]
            if text.endswith("\n"):
                text = text[:-1]
            if text.endswith("\r"):
                text = text[:-1]
            yield lineno, text


def read_lines(path: str) -> List[str]:
    """All lines of a UTF-8 file (see :func:`iter_lines`)."""
    return [text for _, text in iter_lines(path)]


def iter_jsonl(path: str) -> Iterator[Tuple[int, dict]]:
    """Yield ``(line_number, object)`` for each non-blank line of a JSON-lines file."""
    for lineno, text in iter_lines(path):
        if not text.strip():
            continue
        try:
            obj = json.loads(text)
        except json.JSONDecodeError as err:
            raise DataError(f"{path}:{lineno}: not valid JSON ({err.msg} at column {err.colno})") from None
        if not isinstance(obj, dict):
            raise DataError(f"{path}:{lineno}: expected a JSON object, got {type(obj).__name__}")
        yield lineno, obj


def normalize_whitespace(text: str) -> str:
    """Collapse every run of whitespace (newlines, tabs, Unicode separators) into one space."""
    return " ".join(text.split())


def truncate_words(text: str, max_words: Optional[int]) -> str:
    """The first ``max_words`` space-separated words of a normalised text (all when None)."""
    if max_words is None:
        return text
    tokens = text.split(" ")
    return text if len(tokens) <= max_words else " ".join(tokens[:max_words])


@dataclass
class Skip:
    split: str
    doc_id: str
    where: str
    reason: str


class SkipLog:
    """Accounts for every document a preparation step leaves out.

    ``skip()`` logs a warning naming the document and where it came from, or, with ``strict``,
    raises :class:`DataError` instead. ``summary()`` is the line the scripts print at the end.
    """

    def __init__(self, strict: bool = False):
        self.strict = strict
        self.skips: List[Skip] = []

    def skip(self, split: str, doc_id: str, where: str, reason: str) -> None:
        message = f"{where}: {reason} (split {split}, id {doc_id})"
        if self.strict:
            raise DataError(message + "; refusing because of --strict")
        logger.warning("skipping document: %s", message)
        self.skips.append(Skip(split, doc_id, where, reason))

    def __len__(self) -> int:
        return len(self.skips)

    def summary(self, total: int, max_ids: int = 20) -> str:
        if not self.skips:
            return f"skipped 0 of {total}"
        ids = [f"{s.split}:{s.doc_id}" for s in self.skips]
        shown = ", ".join(ids[:max_ids])
        if len(ids) > max_ids:
            shown += f", ... ({len(ids) - max_ids} more)"
        return f"skipped {len(ids)} of {total}: ids {shown}"

    def write_tsv(self, path: str) -> None:
        """Write every skip as ``split<TAB>id<TAB>where<TAB>reason`` (header line first)."""
        with open(path, "w", encoding="utf-8") as out:
            out.write("split\tid\twhere\treason\n")
            for s in self.skips:
                fields = [s.split, s.doc_id, s.where, s.reason]
                out.write("\t".join(normalize_whitespace(f) for f in fields) + "\n")


class SplitWriter:
    """Writes ``{split}.src``, ``{split}.tgt`` and ``{split}.ids`` in step, one document per line.

    The files are written under temporary names and renamed when the ``with`` block ends without
    an exception, so an interrupted run never leaves a split that looks complete.
    """

    def __init__(self, out_dir: str, split: str, src_lang: str = "src", tgt_lang: str = "tgt"):
        self.out_dir = out_dir
        self.split = split
        self.paths = {
            "src": os.path.join(out_dir, f"{split}.{src_lang}"),
            "tgt": os.path.join(out_dir, f"{split}.{tgt_lang}"),
            "ids": os.path.join(out_dir, f"{split}.ids"),
        }
        self.count = 0
        self._handles = {}

    def __enter__(self) -> "SplitWriter":
        os.makedirs(self.out_dir, exist_ok=True)
        for key, path in self.paths.items():
            self._handles[key] = open(path + ".partial", "w", encoding="utf-8", newline="\n")
        return self

    def write(self, doc_id: str, source: str, target: str) -> None:
        for name, value in (("id", doc_id), ("source", source), ("target", target)):
            if not value or value != normalize_whitespace(value):
                raise ValueError(f"{name} of document {doc_id!r} is empty or not whitespace-normalised")
        if " " in doc_id:
            raise ValueError(f"document id {doc_id!r} contains a space")
        self._handles["src"].write(source + "\n")
        self._handles["tgt"].write(target + "\n")
        self._handles["ids"].write(doc_id + "\n")
        self.count += 1

    def __exit__(self, exc_type, exc, tb) -> None:
        for handle in self._handles.values():
            handle.close()
        for path in self.paths.values():
            if exc_type is None:
                os.replace(path + ".partial", path)
            else:
                os.remove(path + ".partial")


@dataclass
class PrepareResult:
    """What a preparation run wrote: documents per split, and the skips."""

    counts: Dict[str, int] = field(default_factory=dict)
    listed: Dict[str, int] = field(default_factory=dict)
    skips: SkipLog = field(default_factory=SkipLog)

    @property
    def total(self) -> int:
        return sum(self.listed.values())

    def summary(self) -> str:
        parts = ", ".join(f"{split} {n}" for split, n in self.counts.items())
        return f"wrote {parts}; {self.skips.summary(self.total)}"

    def write_manifest(self, out_dir: str, source: str) -> None:
        """``prepare.json`` (counts and skips) and, when anything was skipped, ``skipped.tsv``."""
        manifest = {
            "source": source,
            "counts": self.counts,
            "listed": self.listed,
            "skipped": [vars(s) for s in self.skips.skips],
        }
        with open(os.path.join(out_dir, "prepare.json"), "w", encoding="utf-8") as out:
            json.dump(manifest, out, indent=1)
            out.write("\n")
        tsv = os.path.join(out_dir, "skipped.tsv")
        if self.skips.skips:
            self.skips.write_tsv(tsv)
        elif os.path.exists(tsv):
            os.remove(tsv)  # left by an earlier run into the same folder
