"""ACLSum as an embedded long-document summarization set: paper body -> abstract.

The ``aclsum`` package (PyPI) ships 250 ACL papers as S2ORC JSON in
``aclsum/dataset/paper_jsons/{id}.json`` and the split lists ``aclsum/dataset/{train,val,test}.jsonl``
(one JSON object per line; its ``id`` field names the paper file). Nothing is downloaded: the data
is read from the installed package.

Per paper: the source is ``pdf_parse.body_text[].text`` joined with spaces, the reference is the
top-level ``abstract`` (or, when that is empty, ``pdf_parse.abstract[].text``) split into sentences
by :func:`deep_pyramidion.data.sentences.split_sentences` and joined with the ``<q>`` marker.

Every field read is checked for its type (objects, arrays of objects, strings; a missing field or
``null`` counts as empty): a paper whose field has another type is skipped with a warning naming
the paper and the field, like any other unusable paper (``--strict``: an error).
"""

import importlib.util
import logging
import os
from typing import Iterator, List, Optional, Tuple

from deep_pyramidion.plumbing.errors import DataError
from deep_pyramidion.plumbing.files import StagedDir, check_not_overlapping
from deep_pyramidion.plumbing.lines import iter_json_values, load_json_file

from .sentences import remove_marker, split_sentences
from .splits import (
    PREPARED_OWNED,
    Document,
    PrepareResult,
    Record,
    SkipDocument,
    SkipLog,
    expect_type,
    type_name,
    write_split,
)

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


def _split_list_entries(path: str) -> Iterator[Tuple[int, Optional[str], str]]:
    """``(line, id, problem)`` for each entry of a split list; ``id`` is None when the entry is
    not an object with a non-empty string ``id`` (``problem`` says what is wrong)."""
    for lineno, obj in iter_json_values(path):
        if not isinstance(obj, dict):
            yield lineno, None, f"split list entry is {type_name(obj)}, expected an object with an 'id'"
            continue
        doc_id = obj.get("id")
        if not isinstance(doc_id, str) or not doc_id.strip():
            shown = "empty" if isinstance(doc_id, str) else type_name(doc_id)
            yield lineno, None, f"field id is {shown}, expected a non-empty string"
            continue
        yield lineno, doc_id.strip(), ""


def read_split_list(path: str) -> List[Tuple[int, str]]:
    """``(line, id)`` for each usable paper of an aclsum split list (bad entries left out; the
    prepare step skips and counts them)."""
    return [(lineno, doc_id) for lineno, doc_id, _ in _split_list_entries(path) if doc_id is not None]


def _paragraph_texts(parse: dict, key: str) -> List[str]:
    paragraphs = expect_type(parse.get(key) or [], (list,), f"pdf_parse.{key}", "an array of objects")
    texts = []
    for i, paragraph in enumerate(paragraphs):
        paragraph = expect_type(paragraph, (dict,), f"pdf_parse.{key}[{i}]", "an object")
        text = paragraph.get("text")
        texts.append(expect_type(text, (str,), f"pdf_parse.{key}[{i}].text", "a string") if text is not None else "")
    return texts


def paper_text(paper: object) -> Tuple[str, List[str]]:
    """(body text, abstract sentences) of one S2ORC paper; either may be empty. A field of the
    wrong type raises :class:`~deep_pyramidion.data.splits.SkipDocument` naming it."""
    paper = expect_type(paper, (dict,), "(the paper)", "an object")
    parse = paper.get("pdf_parse")
    parse = {} if parse is None else expect_type(parse, (dict,), "pdf_parse", "an object")
    body = " ".join(_paragraph_texts(parse, "body_text"))
    abstract = paper.get("abstract")
    abstract = "" if abstract is None else expect_type(abstract, (str,), "abstract", "a string")
    if not abstract.strip():
        abstract = " ".join(_paragraph_texts(parse, "abstract"))
    return remove_marker(body), split_sentences(remove_marker(abstract))


def _load_paper(path: str) -> Document:
    if not os.path.isfile(path):
        raise SkipDocument("paper JSON not found", path)
    try:
        paper = load_json_file(path)
    except DataError as err:
        raise SkipDocument(_without_path(str(err), path), path) from None
    try:
        body, sentences = paper_text(paper)
    except SkipDocument as problem:
        raise SkipDocument(problem.reason, path) from None
    return Document(body, sentences, path, source_field="pdf_parse.body_text")


def _without_path(message: str, path: str) -> str:
    """``PATH:3: not valid JSON ...`` -> ``line 3: not valid JSON ...`` (the skip names the path)."""
    if not message.startswith(path + ":"):
        return message
    rest = message[len(path) + 1:]
    return f"line {rest}" if rest[:1].isdigit() else rest.strip()


def split_records(data_dir: str, list_path: str) -> Iterator[Record]:
    """The :class:`Record` of every entry of one split list (a bad entry's ``load`` skips it)."""
    for lineno, doc_id, problem in _split_list_entries(list_path):
        where = f"{list_path}:{lineno}"
        if doc_id is None:
            yield Record(f"line{lineno}", where, lambda problem=problem: _raise(problem))
            continue
        paper_path = os.path.join(data_dir, "paper_jsons", f"{doc_id}.json")
        yield Record(doc_id, where, lambda p=paper_path: _load_paper(p))


def _raise(reason: str):
    raise SkipDocument(reason)


def prepare_aclsum(
    out_dir: str,
    data_dir: Optional[str] = None,
    max_source_words: Optional[int] = None,
    strict: bool = False,
    source: Optional[str] = None,
) -> PrepareResult:
    """Write ``train``/``dev-0``/``test-A`` ``.src/.tgt/.ids``, ``prepare.json`` and (when papers
    were skipped) ``skipped.tsv`` for ACLSum into ``out_dir``, replacing what it held only when
    every split was written (:class:`~deep_pyramidion.plumbing.files.StagedDir`).

    Papers listed twice, with no or an unreadable paper file, a field of the wrong type, an empty
    body or no abstract are skipped and counted (``strict=True`` raises :class:`DataError`).
    """
    if max_source_words is not None and max_source_words <= 0:
        raise ValueError("max_source_words must be positive")
    data_dir = data_dir or aclsum_data_dir()
    check_not_overlapping("--out", out_dir, [("--data-dir", data_dir)])
    result = PrepareResult(skips=SkipLog(strict=strict))
    seen = {}  # an id listed in two splits is kept in the first only
    with StagedDir(out_dir, PREPARED_OWNED, "--out") as stage:
        for list_name, split in SPLIT_NAMES.items():
            list_path = os.path.join(data_dir, f"{list_name}.jsonl")
            write_split(split_records(data_dir, list_path), stage, split, result, max_source_words, seen)
            logger.info("%s: %d documents from %s", split, result.counts[split], list_path)
        result.write_manifest(stage, source=source or f"aclsum ({data_dir})")
    return result
