"""The split writer shared by every prepare step, and its accounting of skipped documents.

A dataset module turns its raw files into :class:`Record` objects (an id, where it is listed, and a
``load()`` that reads and validates the document); :func:`write_split` does the rest the same way
for every dataset: duplicate ids, documents that fail to load or have the wrong shape, empty
sources, missing abstracts, the skip accounting of :class:`SkipLog` (or the error of ``--strict``)
and the three files of the split, written in step by :class:`SplitWriter`.
"""

import json
import logging
import os
from dataclasses import dataclass, field
from typing import Callable, Dict, Iterable, List, Optional

from deep_pyramidion.plumbing.errors import DataError
from deep_pyramidion.plumbing.files import owned_by
from deep_pyramidion.plumbing.lines import normalize_whitespace, truncate_words

from .sentences import join_sentences

logger = logging.getLogger(__name__)


class SkipDocument(Exception):
    """A problem of one document (unreadable paper, a field of the wrong type): the document is
    skipped and counted; ``--strict`` turns it into an error."""

    def __init__(self, reason: str, where: Optional[str] = None):
        super().__init__(reason)
        self.reason = reason
        self.where = where


def type_name(value: object) -> str:
    """``str``, ``int``, ``list``, ...; JSON's own names for messages about JSON records."""
    return {dict: "object", list: "array", str: "string", bool: "boolean", type(None): "null"}.get(
        type(value), type(value).__name__
    )


def expect_type(value: object, types: tuple, field_name: str, expected: str) -> object:
    """``value`` when it is of one of ``types``; otherwise :class:`SkipDocument` naming the field
    (``bool`` is never accepted as a number)."""
    if isinstance(value, types) and not (isinstance(value, bool) and bool not in types):
        return value
    raise SkipDocument(f"field {field_name} is {type_name(value)}, expected {expected}")


def string_list(value: object, field_name: str, allow_string: bool = True) -> List[str]:
    """A field that holds a list of strings (or one string): its strings; ``None`` is empty.
    Anything else, or a list element that is not a string, is :class:`SkipDocument`."""
    if value is None:
        return []
    if allow_string and isinstance(value, str):
        return [value]
    expected = "an array of strings" + (" or a string" if allow_string else "")
    items = expect_type(value, (list,), field_name, expected)
    for i, item in enumerate(items):
        expect_type(item, (str,), f"{field_name}[{i}]", "a string")
    return list(items)


@dataclass
class Document:
    """A loaded document: the source (whitespace-normalised, marker removed), the reference's
    sentences, where it was read and which field the source came from (for messages)."""

    source: str
    sentences: List[str]
    where: str
    source_field: str = "body"


@dataclass
class Record:
    """One entry of a split as listed by the dataset: ``load()`` returns its :class:`Document`
    or raises :class:`SkipDocument`; it runs only after the id was found not to be a duplicate."""

    doc_id: str
    where: str
    load: Callable[[], Document]


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
        with open(path, "w", encoding="utf-8", newline="\n") as out:
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
        with open(os.path.join(out_dir, "prepare.json"), "w", encoding="utf-8", newline="\n") as out:
            json.dump(manifest, out, indent=1)
            out.write("\n")
        tsv = os.path.join(out_dir, "skipped.tsv")
        if self.skips.skips:
            self.skips.write_tsv(tsv)
        elif os.path.exists(tsv):
            os.remove(tsv)  # left by an earlier run into the same folder


#: entries of a prepared folder (what :class:`~deep_pyramidion.plumbing.files.StagedDir` may replace)
PREPARED_PATTERNS = (r".+\.(src|tgt|ids)", r".+\.(src|tgt|ids)\.partial", r"prepare\.json", r"skipped\.tsv")
PREPARED_OWNED = owned_by(patterns=PREPARED_PATTERNS)


def write_split(
    records: Iterable[Record],
    out_dir: str,
    split: str,
    result: PrepareResult,
    max_source_words: Optional[int] = None,
    seen: Optional[Dict[str, str]] = None,
) -> int:
    """Clean, check and write the records of one split into ``out_dir``, counting every skipped
    document in ``result`` (or raising :class:`DataError` when ``result.skips.strict``).

    A document is skipped when its id was seen before (in this split, or in ``seen``: pass one
    dict to every split to refuse an id that is listed in two splits), when ``load()`` raises :class:`SkipDocument`, when its source is empty and when
    it has no reference sentence. Returns the number of documents written.
    """
    seen = {} if seen is None else seen
    listed = 0
    with SplitWriter(out_dir, split) as writer:
        for record in records:
            listed += 1
            doc_id = normalize_whitespace(record.doc_id).replace(" ", "_")
            if doc_id in seen:
                result.skips.skip(split, doc_id, record.where, f"duplicate id (first at {seen[doc_id]})")
                continue
            seen[doc_id] = record.where
            try:
                doc = record.load()
            except SkipDocument as problem:
                result.skips.skip(split, doc_id, problem.where or record.where, problem.reason)
                continue
            if not doc.source:
                result.skips.skip(split, doc_id, doc.where, f"empty body text ({doc.source_field})")
                continue
            target = join_sentences(doc.sentences)
            if not target:
                result.skips.skip(split, doc_id, doc.where, "document without an abstract")
                continue
            writer.write(doc_id, truncate_words(doc.source, max_source_words), target)
    result.listed[split] = listed
    result.counts[split] = writer.count
    logger.info("%s: wrote %d of %d documents", split, writer.count, listed)
    return writer.count
