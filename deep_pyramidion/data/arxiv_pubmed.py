"""arXiv and PubMed long-document summarization sets (Cohan et al., 2018).

Original release format (``arxiv-dataset/`` or ``pubmed-dataset/``): one JSON object per line in
``train.txt``, ``val.txt``, ``test.txt`` (``.jsonl`` accepted too) with

    article_id      string id
    article_text    list of sentences of the body
    abstract_text   list of ``"<S> sentence </S>"`` strings
    section_names, sections   (not used here)

Source = the article sentences joined with spaces; reference = the abstract sentences (the
``<S> ... </S>`` spans) joined with the ``<q>`` marker. Splits map ``train -> train``,
``val -> dev-0``, ``test -> test-A``.

The Hugging Face ``datasets`` copy (``scientific_papers`` with config ``arxiv``/``pubmed``) has no
ids and stores ``article``/``abstract`` as newline-separated strings; it is read by
:func:`iter_hf_records` when the optional ``datasets`` package is installed.

Every record is checked for its shape: a line that is JSON but not an object, an ``article_id``
that is not a string or an integer, an ``article_text`` / ``abstract_text`` that is neither a
string nor an array of strings (``null`` counts as empty) make the document skipped with a warning
naming it and the field, like any other unusable document (``--strict``: an error).
"""

import logging
import os
import re
from typing import Dict, Iterator, List, Optional, Sequence

from deep_pyramidion.plumbing.errors import DataError
from deep_pyramidion.plumbing.files import StagedDir, check_not_overlapping
from deep_pyramidion.plumbing.lines import iter_json_values, normalize_whitespace

from .sentences import remove_marker, split_sentences
from .splits import (
    PREPARED_OWNED,
    Document,
    PrepareResult,
    Record,
    SkipDocument,
    SkipLog,
    string_list,
    type_name,
    write_split,
)

logger = logging.getLogger(__name__)

#: original split name -> split name written by this project
SPLIT_NAMES = {"train": "train", "val": "dev-0", "test": "test-A"}
#: file-name stems accepted for each original split
_STEM_ALIASES = {
    "train": "train",
    "val": "val",
    "valid": "val",
    "validation": "val",
    "dev": "val",
    "test": "test",
}
_EXTENSIONS = (".txt", ".jsonl", ".json")
_SENTENCE_TAG = re.compile(r"<S>(.*?)</S>", re.DOTALL)


def find_split_files(inputs: Sequence[str], splits: Sequence[str] = tuple(SPLIT_NAMES)) -> Dict[str, str]:
    """Map each original split name to its file.

    ``inputs`` is either one folder holding ``train.txt``/``val.txt``/``test.txt`` (or ``.jsonl``)
    or a list of files whose names say the split: the name without extension must be one of
    train, val, valid, validation, dev, test.
    """
    found: Dict[str, str] = {}
    if len(inputs) == 1 and os.path.isdir(inputs[0]):
        folder = inputs[0]
        for split in splits:
            candidates = [os.path.join(folder, split + ext) for ext in _EXTENSIONS]
            existing = [c for c in candidates if os.path.isfile(c)]
            if not existing:
                names = ", ".join(os.path.basename(c) for c in candidates)
                raise DataError(f"{folder}: missing split file for '{split}' (looked for {names})")
            found[split] = existing[0]
        return found
    for path in inputs:
        if not os.path.isfile(path):
            raise DataError(f"{path}: file not found")
        stem = os.path.basename(path)
        for ext in _EXTENSIONS:
            if stem.endswith(ext):
                stem = stem[: -len(ext)]
                break
        split = _STEM_ALIASES.get(stem.lower())
        if split is None:
            raise DataError(
                f"{path}: cannot tell the split from the file name (expected train, val or test "
                f"with .txt/.jsonl)"
            )
        if split in found:
            raise DataError(f"{path}: split '{split}' given twice (also {found[split]})")
        found[split] = path
    missing = [s for s in splits if s not in found]
    if missing:
        raise DataError(f"missing split file(s) for {', '.join(missing)} among {', '.join(inputs)}")
    return {s: found[s] for s in splits}


def abstract_sentences(abstract: object) -> List[str]:
    """Sentences of an abstract given as the original list of ``<S> ... </S>`` strings, one such
    string, a newline-separated string (Hugging Face copy) or a plain list of sentences."""
    if abstract is None:
        return []
    if isinstance(abstract, (list, tuple)):
        parts = [a for a in abstract if isinstance(a, str)]
        joined = " ".join(parts)
    elif isinstance(abstract, str):
        parts = abstract.split("\n")
        joined = abstract
    else:
        return []
    if "<S>" in joined:
        sentences = _SENTENCE_TAG.findall(joined)
    else:
        sentences = parts
        if len([p for p in parts if p.strip()]) == 1:
            sentences = split_sentences(parts[0] if parts[0].strip() else joined)
    cleaned = (normalize_whitespace(remove_marker(s.replace("</S>", " ").replace("<S>", " "))) for s in sentences)
    return [s for s in cleaned if s]


def article_source(article: object) -> str:
    """The body as one whitespace-normalised line (list of sentences or one string)."""
    if isinstance(article, (list, tuple)):
        article = " ".join(a for a in article if isinstance(a, str))
    if not isinstance(article, str):
        return ""
    return remove_marker(article)


def _document(where: str, article: object, abstract: object, article_field: str, abstract_field: str) -> Document:
    """Validate the two fields' types (:class:`SkipDocument` naming the field) and clean them."""
    string_list(article, article_field)
    string_list(abstract, abstract_field)
    return Document(article_source(article), abstract_sentences(abstract), where, source_field=article_field)


def _doc_id(value: object, fallback: str) -> str:
    if value is None or value == "" or isinstance(value, bool) or not isinstance(value, (str, int)):
        return fallback
    return normalize_whitespace(str(value)).replace(" ", "_") or fallback


def _skip(reason: str):
    raise SkipDocument(reason)


def iter_original_records(path: str) -> Iterator[Record]:
    """Records of one split file of the original release."""
    for lineno, obj in iter_json_values(path):
        where = f"{path}:{lineno}"
        if not isinstance(obj, dict):
            reason = f"record is {type_name(obj)}, expected a JSON object"
            yield Record(f"line{lineno}", where, lambda r=reason: _skip(r))
            continue
        raw_id = obj.get("article_id")
        doc_id = _doc_id(raw_id, f"line{lineno}")
        if raw_id is not None and (isinstance(raw_id, bool) or not isinstance(raw_id, (str, int))):
            reason = f"field article_id is {type_name(raw_id)}, expected a string"
            yield Record(doc_id, where, lambda r=reason: _skip(r))
            continue
        article, abstract = obj.get("article_text"), obj.get("abstract_text")
        yield Record(doc_id, where, lambda w=where, a=article, b=abstract: _document(w, a, b, "article_text", "abstract_text"))


def iter_hf_records(name: str, config: str, split: str) -> Iterator[Record]:
    """Records of a Hugging Face ``datasets`` copy (``split``: train, validation or test)."""
    try:
        import datasets  # optional dependency
    except ImportError:
        raise DataError(
            "--hf needs the Hugging Face 'datasets' package (pip install datasets) and network "
            "access; otherwise download the original release and pass --input"
        ) from None
    try:
        dataset = datasets.load_dataset(name, config, split=split)
    except Exception as err:  # network, missing script support, unknown config ...
        raise DataError(f"could not load {name}/{config} split {split} with datasets: {err}") from err
    for index, row in enumerate(dataset):
        where = f"{name}/{config}:{split}[{index}]"
        if not isinstance(row, dict):
            yield Record(f"{config}-{split}-{index}", where, lambda: _skip("row is not a mapping"))
            continue
        doc_id = _doc_id(row.get("article_id") or row.get("id"), f"{config}-{split}-{index}")
        article, abstract = row.get("article"), row.get("abstract")
        yield Record(doc_id, where, lambda w=where, a=article, b=abstract: _document(w, a, b, "article", "abstract"))


def _prepare(per_split, out_dir: str, strict: bool, max_source_words: Optional[int], source: str,
             inputs=()) -> PrepareResult:
    check_not_overlapping("--out", out_dir, inputs)
    result = PrepareResult(skips=SkipLog(strict=strict))
    with StagedDir(out_dir, PREPARED_OWNED, "--out") as stage:
        for split, records in per_split:
            write_split(records, stage, SPLIT_NAMES[split], result, max_source_words)
        result.write_manifest(stage, source=source)
    return result


def prepare_arxiv_pubmed(
    inputs: Sequence[str],
    out_dir: str,
    max_source_words: Optional[int] = None,
    strict: bool = False,
    splits: Sequence[str] = tuple(SPLIT_NAMES),
) -> PrepareResult:
    """Convert the original release (folder or split files) to ``train``/``dev-0``/``test-A`` in
    ``out_dir`` (with ``prepare.json``), replacing what it held only when every split was written."""
    files = find_split_files(inputs, splits)
    per_split = ((split, iter_original_records(path)) for split, path in files.items())
    flagged = [("--input", p) for p in list(inputs) + list(files.values())]
    return _prepare(per_split, out_dir, strict, max_source_words, ", ".join(inputs), flagged)


def prepare_hf(
    name: str,
    config: str,
    out_dir: str,
    max_source_words: Optional[int] = None,
    strict: bool = False,
    splits: Sequence[str] = tuple(SPLIT_NAMES),
) -> PrepareResult:
    """Same as :func:`prepare_arxiv_pubmed` from the Hugging Face copy."""
    hf_split = {"train": "train", "val": "validation", "test": "test"}
    per_split = ((split, iter_hf_records(name, config, hf_split[split])) for split in splits)
    return _prepare(per_split, out_dir, strict, max_source_words, f"{name}/{config} (Hugging Face datasets)")
