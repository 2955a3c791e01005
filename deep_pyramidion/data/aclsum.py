"""ACLSum as an embedded long-document summarization set: paper body -> abstract.

The ``aclsum`` package (PyPI) ships 250 ACL papers as S2ORC JSON in
``aclsum/dataset/paper_jsons/{id}.json`` and the split lists ``aclsum/dataset/{train,val,test}.jsonl``
(one JSON object per line; its ``id`` field names the paper file). Nothing is downloaded: the data
is read from the installed package.

Per paper: the source is ``pdf_parse.body_text[].text`` joined with spaces, the reference is the
top-level ``abstract`` (or, when that is empty, ``pdf_parse.abstract[].text``) split into sentences
by :func:`deep_pyramidion.data.sentences.split_sentences` and joined with the ``<q>`` marker.
"""

import importlib.util
import json
import logging
import os
from typing import List, Optional, Tuple

from .io import (
    DataError,
    PrepareResult,
    SkipLog,
    SplitWriter,
    iter_jsonl,
    normalize_whitespace,
    truncate_words,
)
from .sentences import join_sentences, remove_marker, split_sentences

logger = logging.getLogger(__name__)

#: aclsum split list -> split name written by this project
SPLIT_NAMES = {"train": "train", "val": "dev-0", "test": "test-A"}


def aclsum_data_dir() -> str:
    """The ``dataset`` folder of the installed ``aclsum`` package (located without importing it)."""
    spec = importlib.util.find_spec("aclsum")
    if spec is None or not spec.submodule_search_locations:
        raise DataError(
            "the aclsum package is not installed: pip install aclsum "
            "(or pip install -e '.[data]')"
        )
    path = os.path.join(list(spec.submodule_search_locations)[0], "dataset")
    if not os.path.isdir(path):
        raise DataError(f"{path}: the aclsum package has no dataset folder")
    return path


def read_split_list(path: str) -> List[Tuple[int, str]]:
    """``(line, id)`` for each paper in an aclsum split list."""
    ids = []
    for lineno, obj in iter_jsonl(path):
        doc_id = obj.get("id")
        if not isinstance(doc_id, str) or not doc_id.strip():
            raise DataError(f"{path}:{lineno}: no string 'id' field")
        ids.append((lineno, doc_id.strip()))
    return ids


def paper_text(paper: dict) -> Tuple[str, List[str]]:
    """(body text, abstract sentences) of one S2ORC paper; either may be empty."""
    parse = paper.get("pdf_parse") or {}
    body = " ".join(
        p.get("text") or "" for p in (parse.get("body_text") or []) if isinstance(p, dict)
    )
    abstract = paper.get("abstract") or ""
    if not isinstance(abstract, str) or not abstract.strip():
        abstract = " ".join(
            p.get("text") or "" for p in (parse.get("abstract") or []) if isinstance(p, dict)
        )
    return remove_marker(body), split_sentences(remove_marker(abstract))


def _load_paper(path: str) -> Tuple[Optional[dict], str]:
    """(paper, "") or (None, reason) for a per-document problem."""
    try:
        with open(path, "rb") as handle:
            raw = handle.read()
    except FileNotFoundError:
        return None, "paper JSON not found"
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        line = raw[: err.start].count(b"\n") + 1
        return None, f"not valid UTF-8 at line {line}"
    try:
        paper = json.loads(text)
    except json.JSONDecodeError as err:
        return None, f"not valid JSON at line {err.lineno} ({err.msg})"
    if not isinstance(paper, dict):
        return None, "not a JSON object"
    return paper, ""


def prepare_aclsum(
    out_dir: str,
    data_dir: Optional[str] = None,
    max_source_words: Optional[int] = None,
    strict: bool = False,
) -> PrepareResult:
    """Write ``train``/``dev-0``/``test-A`` ``.src/.tgt/.ids`` for ACLSum into ``out_dir``.

    Documents with no paper file, an unreadable paper file, an empty body or no abstract are
    skipped and counted (``strict=True`` raises :class:`DataError` instead).
    """
    if max_source_words is not None and max_source_words <= 0:
        raise ValueError("max_source_words must be positive")
    data_dir = data_dir or aclsum_data_dir()
    result = PrepareResult(skips=SkipLog(strict=strict))
    seen = {}
    for list_name, split in SPLIT_NAMES.items():
        list_path = os.path.join(data_dir, f"{list_name}.jsonl")
        entries = read_split_list(list_path)
        result.listed[split] = len(entries)
        with SplitWriter(out_dir, split) as writer:
            for lineno, doc_id in entries:
                where = f"{list_path}:{lineno}"
                if doc_id in seen:
                    result.skips.skip(split, doc_id, where, f"duplicate id (first at {seen[doc_id]})")
                    continue
                seen[doc_id] = where
                paper_path = os.path.join(data_dir, "paper_jsons", f"{doc_id}.json")
                paper, problem = _load_paper(paper_path)
                if paper is None:
                    result.skips.skip(split, doc_id, paper_path, problem)
                    continue
                body, abstract = paper_text(paper)
                if not body:
                    result.skips.skip(split, doc_id, paper_path, "empty body text (pdf_parse.body_text)")
                    continue
                if not abstract:
                    result.skips.skip(split, doc_id, paper_path, "document without an abstract")
                    continue
                writer.write(
                    normalize_whitespace(doc_id).replace(" ", "_"),
                    truncate_words(body, max_source_words),
                    join_sentences(abstract),
                )
        result.counts[split] = writer.count
        logger.info("%s: %d documents from %s", split, writer.count, list_path)
    return result
