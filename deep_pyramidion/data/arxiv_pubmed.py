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
"""

import logging
import os
import re
from typing import Dict, Iterable, Iterator, List, Optional, Sequence, Tuple

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

# (where, doc_id, article, abstract) as read from a source, before any cleaning
Record = Tuple[str, str, object, object]


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


def iter_original_records(path: str) -> Iterator[Record]:
    """Records of one split file of the original release."""
    for lineno, obj in iter_jsonl(path):
        doc_id = obj.get("article_id")
        doc_id = normalize_whitespace(str(doc_id)).replace(" ", "_") if doc_id not in (None, "") else ""
        yield f"{path}:{lineno}", doc_id or f"line{lineno}", obj.get("article_text"), obj.get("abstract_text")


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
        doc_id = row.get("article_id") or row.get("id") or f"{config}-{split}-{index}"
        doc_id = normalize_whitespace(str(doc_id)).replace(" ", "_")
        yield f"{name}/{config}:{split}[{index}]", doc_id, row.get("article"), row.get("abstract")


def write_split(
    records: Iterable[Record],
    out_dir: str,
    split: str,
    result: PrepareResult,
    max_source_words: Optional[int] = None,
) -> None:
    """Clean and write the records of one split, counting every skipped document in ``result``."""
    seen = {}
    listed = 0
    with SplitWriter(out_dir, split) as writer:
        for where, doc_id, article, abstract in records:
            listed += 1
            if doc_id in seen:
                result.skips.skip(split, doc_id, where, f"duplicate id (first at {seen[doc_id]})")
                continue
            seen[doc_id] = where
            source = article_source(article)
            if not source:
                result.skips.skip(split, doc_id, where, "empty document (no article text)")
                continue
            sentences = abstract_sentences(abstract)
            if not sentences:
                result.skips.skip(split, doc_id, where, "document without an abstract")
                continue
            writer.write(doc_id, truncate_words(source, max_source_words), join_sentences(sentences))
    result.listed[split] = listed
    result.counts[split] = writer.count
    logger.info("%s: wrote %d of %d documents", split, writer.count, listed)


def prepare_arxiv_pubmed(
    inputs: Sequence[str],
    out_dir: str,
    max_source_words: Optional[int] = None,
    strict: bool = False,
    splits: Sequence[str] = tuple(SPLIT_NAMES),
) -> PrepareResult:
    """Convert the original release (folder or split files) to ``train``/``dev-0``/``test-A``."""
    files = find_split_files(inputs, splits)
    result = PrepareResult(skips=SkipLog(strict=strict))
    for split, path in files.items():
        write_split(iter_original_records(path), out_dir, SPLIT_NAMES[split], result, max_source_words)
    return result


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
    result = PrepareResult(skips=SkipLog(strict=strict))
    for split in splits:
        records = iter_hf_records(name, config, hf_split[split])
        write_split(records, out_dir, SPLIT_NAMES[split], result, max_source_words)
    return result
