"""Text splits -> sentencepiece pieces -> binarized fairseq data named train / dev-0 / test-A.

Steps of :func:`preprocess`:

1. check the text splits (``{split}.src``/``{split}.tgt``: present, UTF-8, no empty document,
   same number of lines, and the same as ``{split}.ids`` when there is one);
2. train a sentencepiece model on ``train.src`` + ``train.tgt`` (or reuse ``spm_model``; or, with
   ``pretrained``, take a converted pretrained BART's byte-level BPE and dictionary instead, see
   :func:`encode_files_gpt2`); the
   sentence marker ``<q>`` is a user-defined symbol, so it is always one piece; on a corpus too small
   for the requested vocabulary the model comes out smaller (``hard_vocab_limit=False``) and a
   warning says so;
3. encode every split to pieces (``--workers`` processes);
4. write the fairseq dictionary from the sentencepiece vocabulary itself (every piece, with its
   count in the training pieces, padded to a multiple of 8 with ``madeupword`` entries), so model
   and dictionary cannot disagree;
5. run ``fairseq-preprocess --joined-dictionary --srcdict DICT --dataset-impl mmap`` in a
   subprocess into a scratch folder and move its outputs to their final names: fairseq names the
   subsets ``train``, ``valid``, ``valid1``, ...; they become ``train``, ``dev-0``, ``test-A``
   (``{split}.src-tgt.{src,tgt}.{bin,idx}``), which is what ``--valid-subset dev-0`` and
   ``--gen-subset test-A`` load;
6. verify: every binarized split holds as many documents as its text, and ``spm.model`` matches
   ``dict.src.txt`` (:func:`check_spm_dictionary`).

The output folder holds ``spm.model``/``spm.vocab`` (use it as ``--sentencepiece-model``),
``dict.src.txt``/``dict.tgt.txt`` (identical), the binarized splits, the ``{split}.ids`` files and
``preprocess.json``. It is built beside the old one and swapped in only when every step succeeded
(:class:`~deep_pyramidion.data.output.StagedDir`): a failing rerun leaves the previous folder as it
was (its ``spm.model`` too, even when that is the model being reused), a successful one leaves
nothing of the previous run (no old ``{split}.ids`` beside new binaries).

Nothing here imports fairseq: ``fairseq-preprocess`` runs in a subprocess and the binarized
document counts are read from the ``.idx`` headers (:func:`binarized_length`).
"""

import json
import logging
import os
import re
import shutil
import struct
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass, field
from typing import Dict, Iterable, Iterator, List, Optional, Sequence, Tuple

from .io import DataError, iter_lines
from .output import StagedDir, check_not_overlapping, owned_by
from .sentences import MARKER, split_marked

logger = logging.getLogger(__name__)

SPLITS = ("train", "dev-0", "test-A")
FAIRSEQ_SPECIALS = ("<s>", "<pad>", "</s>", "<unk>")
_MADEUP = re.compile(r"^madeupword\d+$")


# --------------------------------------------------------------------------- input checks


def check_text_splits(
    data_dir: str, splits: Sequence[str], src: str = "src", tgt: str = "tgt"
) -> Dict[str, int]:
    """Number of documents per split; :class:`DataError` naming file and line for a missing
    file, a non-UTF-8 line, an empty document or files of different lengths."""
    counts = {}
    for split in splits:
        lengths = {}
        for lang in (src, tgt):
            path = os.path.join(data_dir, f"{split}.{lang}")
            if not os.path.isfile(path):
                raise DataError(f"{path}: missing split file (split '{split}')")
            n = 0
            for lineno, line in iter_lines(path):
                if not line.strip():
                    raise DataError(
                        f"{path}:{lineno}: empty document; remove it from both {split}.{src} and "
                        f"{split}.{tgt} (and {split}.ids) or re-run the prepare script"
                    )
                n = lineno
            lengths[path] = n
        (src_path, n_src), (tgt_path, n_tgt) = lengths.items()
        if n_src != n_tgt:
            raise DataError(f"{src_path} has {n_src} documents but {tgt_path} has {n_tgt}")
        ids_path = os.path.join(data_dir, f"{split}.ids")
        if os.path.isfile(ids_path):
            n_ids = sum(1 for _ in iter_lines(ids_path))
            if n_ids != n_src:
                raise DataError(f"{ids_path} has {n_ids} lines but {src_path} has {n_src} documents")
        counts[split] = n_src
    return counts


# --------------------------------------------------------------------------- sentencepiece


def _import_spm():
    try:
        import sentencepiece as spm
    except ImportError:
        raise DataError("the sentencepiece package is not installed: pip install sentencepiece") from None
    return spm


def spm_training_text(paths: Iterable[str], chunk_words: int = 100, max_chars: int = 8000) -> Iterator[str]:
    """Training lines for sentencepiece: each document (marker removed) cut into chunks of at most
    ``chunk_words`` words. Pieces never cross whitespace, so chunking at spaces loses nothing,
    and it keeps every line under sentencepiece's maximum sentence length."""
    for path in paths:
        for _, line in iter_lines(path):
            tokens = [t for s in split_marked(line) for t in s.split()]
            for start in range(0, len(tokens), chunk_words):
                yield " ".join(tokens[start : start + chunk_words])[:max_chars]


def train_spm(
    text_paths: Sequence[str],
    model_prefix: str,
    vocab_size: int,
    model_type: str = "unigram",
    character_coverage: float = 0.9995,
    input_sentence_size: int = 2_000_000,
    workers: int = 1,
    seed: Optional[int] = None,
) -> str:
    """Train ``{model_prefix}.model``/``.vocab``; returns the model path."""
    spm = _import_spm()
    if vocab_size < 8:
        raise DataError(f"vocabulary size {vocab_size} is too small")
    options = dict(
        sentence_iterator=spm_training_text(text_paths),
        model_prefix=model_prefix,
        vocab_size=vocab_size,
        model_type=model_type,
        character_coverage=character_coverage,
        user_defined_symbols=[MARKER],
        hard_vocab_limit=False,
        input_sentence_size=input_sentence_size,
        shuffle_input_sentence=True,
        max_sentence_length=16384,
        num_threads=max(1, workers),
        minloglevel=1,
    )
    if seed is not None and hasattr(spm, "set_random_generator_seed"):
        spm.set_random_generator_seed(seed)
    try:
        spm.SentencePieceTrainer.train(**options)
    except RuntimeError as err:
        raise DataError(f"sentencepiece training on {', '.join(text_paths)} failed: {err}") from None
    model = model_prefix + ".model"
    size = spm.SentencePieceProcessor(model_file=model).get_piece_size()
    if size < vocab_size:
        logger.warning(
            "the training text is too small for %d pieces: sentencepiece made %d (hard_vocab_limit=False)",
            vocab_size,
            size,
        )
    logger.info("trained %s (%d pieces)", model, size)
    return model


_WORKER_SPM = None


def _init_worker(model_path: str) -> None:
    global _WORKER_SPM
    _WORKER_SPM = _import_spm().SentencePieceProcessor(model_file=model_path)


def _encode_batch(lines: List[str]) -> Tuple[List[str], Counter]:
    counts: Counter = Counter()
    out = []
    for pieces in _WORKER_SPM.encode(lines, out_type=str):
        counts.update(pieces)
        # fairseq reads the piece files with universal newlines: a \r would end a line there
        out.append(" ".join(pieces).replace("\r", " "))
    return out, counts


def _batches(path: str, size: int = 64) -> Iterator[List[str]]:
    batch = []
    for _, line in iter_lines(path):
        batch.append(line)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def encode_files(model_path: str, jobs: Sequence[Tuple[str, str]], workers: int = 1) -> List[Counter]:
    """Encode each ``(input, output)`` text file to space-separated pieces, one document per line;
    returns the piece counts of each file."""
    return _encode_with(_init_worker, (model_path,), _encode_batch, jobs, workers, "")


def _encode_with(init, init_args, encode_batch, jobs, workers, what) -> List[Counter]:
    """Run ``encode_batch`` over every batch of lines of each job's input (in ``workers``
    processes, each set up by ``init(*init_args)``; here when 1), writing the output lines in
    order; returns each file's token counts."""
    results = []
    pool = None
    if workers > 1:
        import multiprocessing

        # fork where it is safe and cheap (Linux); spawn elsewhere (re-imports the package)
        method = "fork" if sys.platform.startswith("linux") else "spawn"
        pool = multiprocessing.get_context(method).Pool(workers, init, init_args)
    else:
        init(*init_args)
    try:
        for in_path, out_path in jobs:
            counts: Counter = Counter()
            batches = _batches(in_path)
            mapper = pool.imap(encode_batch, batches) if pool else map(encode_batch, batches)
            with open(out_path, "w", encoding="utf-8", newline="\n") as out:
                for lines, batch_counts in mapper:
                    counts.update(batch_counts)
                    for line in lines:
                        out.write(line + "\n")
            results.append(counts)
            logger.info("encoded %s -> %s%s", in_path, out_path, what)
    finally:
        if pool is not None:
            pool.close()
            pool.join()
    return results


# --------------------------------------------------------------------------- dictionary


def spm_pieces(model_path: str) -> List[str]:
    """The pieces of a sentencepiece model that can appear in encoded text (not control or
    unknown/unused entries), in id order."""
    spm = _import_spm()
    if not os.path.isfile(model_path):
        raise DataError(f"{model_path}: sentencepiece model not found")
    try:
        sp = spm.SentencePieceProcessor(model_file=model_path)
    except (RuntimeError, OSError) as err:
        raise DataError(f"{model_path}: not a sentencepiece model ({err})") from None
    return [
        sp.id_to_piece(i)
        for i in range(sp.get_piece_size())
        if not (sp.is_control(i) or sp.is_unknown(i) or sp.is_unused(i))
    ]


def write_dictionary(model_path: str, counts: Counter, path: str, padding_factor: int = 8) -> int:
    """fairseq dictionary (``piece count`` lines) holding every piece of the model; returns the
    dictionary size including fairseq's 4 special symbols."""
    pieces = [p for p in spm_pieces(model_path) if p not in FAIRSEQ_SPECIALS]
    bad = [p for p in pieces if p != "".join(p.split())]
    if bad:
        logger.warning("leaving %d pieces with whitespace out of the dictionary: %s", len(bad), bad[:5])
        pieces = [p for p in pieces if p not in bad]
    order = sorted(range(len(pieces)), key=lambda i: (-counts.get(pieces[i], 0), i))
    entries = [(pieces[i], counts.get(pieces[i], 0)) for i in order]
    size = len(FAIRSEQ_SPECIALS) + len(entries)
    k = 0
    while padding_factor > 1 and size % padding_factor:
        entries.append((f"madeupword{k:04d}", 0))
        k += 1
        size += 1
    with open(path, "w", encoding="utf-8", newline="\n") as out:
        for piece, count in entries:
            out.write(f"{piece} {count}\n")
    return size


def read_dictionary(path: str) -> List[str]:
    """Entries of a fairseq dictionary file (``word count [#fairseq:overwrite]``), specials and
    ``madeupword`` padding excluded."""
    return [w for w in read_dictionary_symbols(path) if w not in FAIRSEQ_SPECIALS and not _MADEUP.match(w)]


@dataclass
class SpmDictCheck:
    spm_path: str
    dict_path: str
    n_pieces: int
    n_entries: int
    missing: List[str] = field(default_factory=list)  # pieces not in the dictionary
    unknown: List[str] = field(default_factory=list)  # dictionary entries that are not pieces
    marker_is_piece: bool = True

    @property
    def missing_fraction(self) -> float:
        return len(self.missing) / max(1, self.n_pieces)

    @property
    def unknown_fraction(self) -> float:
        return len(self.unknown) / max(1, self.n_entries)


def check_spm_dictionary(spm_path: str, dict_path: str, max_mismatch: float = 0.05) -> SpmDictCheck:
    """Does the sentencepiece model belong to the dictionary?

    Raises :class:`DataError` naming both files when more than ``max_mismatch`` of the model's
    pieces are missing from the dictionary (they would all become ``<unk>``) or more than that
    fraction of the dictionary's entries are not pieces of the model (a dictionary built with
    another model). Smaller differences are logged as warnings.
    """
    pieces = spm_pieces(spm_path)
    if not os.path.isfile(dict_path):
        raise DataError(f"{dict_path}: dictionary not found")
    entries = read_dictionary(dict_path)
    piece_set, entry_set = set(pieces), set(entries)
    report = SpmDictCheck(
        spm_path,
        dict_path,
        len(pieces),
        len(entries),
        missing=[p for p in pieces if p not in entry_set],
        unknown=[e for e in entries if e not in piece_set],
        marker_is_piece=MARKER in piece_set,
    )
    if report.missing_fraction > max_mismatch or report.unknown_fraction > max_mismatch:
        raise DataError(
            f"sentencepiece model {spm_path} does not match dictionary {dict_path}: "
            f"{len(report.missing)} of {report.n_pieces} pieces are missing from the dictionary "
            f"(e.g. {report.missing[:5]}) and {len(report.unknown)} of {report.n_entries} dictionary "
            f"entries are not pieces of the model (e.g. {report.unknown[:5]}); use the spm.model "
            f"written next to the dictionary by scripts/preprocess.py"
        )
    if report.missing or report.unknown:
        logger.warning(
            "%s vs %s: %d pieces not in the dictionary, %d dictionary entries not in the model",
            spm_path,
            dict_path,
            len(report.missing),
            len(report.unknown),
        )
    if not report.marker_is_piece:
        logger.warning("%s: the sentence marker %s is not one piece of the model", spm_path, MARKER)
    return report


# --------------------------------------------------------------------------- fairseq-preprocess


def fairseq_names(splits: Sequence[str]) -> Dict[str, str]:
    """Our split -> the subset name fairseq-preprocess gives it (train first, then valid, valid1,
    ... in the order given: every split other than train is passed as a --validpref)."""
    names = {}
    others = [s for s in splits if s != "train"]
    if "train" in splits:
        names["train"] = "train"
    for k, split in enumerate(others):
        names[split] = "valid" if k == 0 else f"valid{k}"
    return names


def binary_files(prefix_dir: str, name: str, src: str = "src", tgt: str = "tgt") -> List[str]:
    return [
        os.path.join(prefix_dir, f"{name}.{src}-{tgt}.{lang}.{ext}") for lang in (src, tgt) for ext in ("bin", "idx")
    ]


def run_fairseq_preprocess(
    pieces_dir: str,
    dest_dir: str,
    dict_path: str,
    splits: Sequence[str],
    workers: int = 1,
    src: str = "src",
    tgt: str = "tgt",
) -> None:
    """Binarize the piece files of ``splits`` into ``dest_dir`` under our split names."""
    scratch = os.path.join(dest_dir, ".fairseq-preprocess")
    shutil.rmtree(scratch, ignore_errors=True)
    names = fairseq_names(splits)
    cmd = [
        sys.executable, "-m", "fairseq_cli.preprocess",
        "--source-lang", src, "--target-lang", tgt,
        "--destdir", scratch,
        "--joined-dictionary", "--srcdict", dict_path,
        "--dataset-impl", "mmap",
        "--workers", str(max(1, workers)),
    ]  # fmt: skip
    if "train" in names:
        cmd += ["--trainpref", os.path.join(pieces_dir, "train")]
    others = [s for s in splits if s != "train"]
    if others:
        cmd += ["--validpref", ",".join(os.path.join(pieces_dir, s) for s in others)]
    logger.info("running %s", " ".join(cmd))
    proc = subprocess.run(cmd, capture_output=True, text=True, errors="replace")
    if proc.returncode != 0:
        logger.error("fairseq-preprocess output:\n%s\n%s", proc.stdout[-2000:], proc.stderr[-3000:])
        last = [line for line in proc.stderr.splitlines() if line.strip()][-1:] or ["(no message)"]
        raise DataError(f"fairseq-preprocess failed (exit {proc.returncode}): {last[0].strip()[:300]}")
    for split, name in names.items():
        for old, new in zip(binary_files(scratch, name, src, tgt), binary_files(dest_dir, split, src, tgt)):
            if not os.path.isfile(old):
                raise DataError(f"fairseq-preprocess did not write {old}")
            os.replace(old, new)
    for extra in (f"dict.{src}.txt", f"dict.{tgt}.txt", "preprocess.log"):
        if os.path.isfile(os.path.join(scratch, extra)):
            os.replace(os.path.join(scratch, extra), os.path.join(dest_dir, extra))
    shutil.rmtree(scratch, ignore_errors=True)


_IDX_MAGIC = b"MMIDIDX\x00\x00"  # fairseq.data.indexed_dataset.MMapIndexedDataset.Index._HDR_MAGIC
_IDX_HEADER = struct.Struct("<9sQBQ")  # magic, version (1), dtype code, number of documents
_IDX_ITEMSIZE = {1: 1, 2: 1, 3: 2, 4: 4, 5: 8, 6: 8, 7: 8, 8: 2, 9: 4, 10: 8}  # fairseq's _code_to_dtype


def binarized_length(prefix: str) -> int:
    """Number of documents in a binarized mmap dataset (``prefix`` without ``.bin``/``.idx``).

    Read from the ``.idx`` header as fairseq's ``MMapIndexedDataset.Index`` writes it (9-byte
    magic, version 1 as ``<Q``, dtype code as ``<B``, document count as ``<Q``, then the count's
    int32 sizes and int64 pointers), without importing fairseq (and so torch). The header is checked
    against the file sizes, so a truncated ``.idx`` or ``.bin`` is an error, not a wrong count.
    """
    idx, data = prefix + ".idx", prefix + ".bin"
    if not (os.path.isfile(idx) and os.path.isfile(data)):
        raise DataError(f"{idx}/.bin: binarized dataset not found")
    with open(idx, "rb") as handle:
        header = handle.read(_IDX_HEADER.size)
        if len(header) < _IDX_HEADER.size or not header.startswith(_IDX_MAGIC):
            raise DataError(f"{idx}: not a fairseq mmap index (--dataset-impl mmap)")
        _, version, code, count = _IDX_HEADER.unpack(header)
        if version != 1 or code not in _IDX_ITEMSIZE:
            raise DataError(f"{idx}: unsupported mmap index (version {version}, dtype code {code})")
        size = os.fstat(handle.fileno()).st_size
        if size != _IDX_HEADER.size + 12 * count:
            raise DataError(f"{idx}: damaged: its header says {count} documents, its size does not match")
        tokens = 0
        left = count
        while left:  # sum of the int32 sizes, in bounded chunks
            n = min(left, 1 << 20)
            chunk = handle.read(4 * n)
            tokens += sum(struct.unpack(f"<{n}i", chunk))
            left -= n
    if os.path.getsize(data) != tokens * _IDX_ITEMSIZE[code]:
        raise DataError(f"{data}: damaged: holds {os.path.getsize(data)} bytes, its index says {tokens} tokens")
    return count


# --------------------------------------------------------------------------- the whole step


# --------------------------------------------------------------------------- a pretrained BART's BPE

PRETRAINED_FILES = ("dict.txt", "encoder.json", "vocab.bpe")   # what pyramidion-convert writes
_WORKER_BPE = None


def _init_gpt2_worker(vocab: str, merges: str) -> None:
    global _WORKER_BPE
    from .gpt2_bpe import Gpt2Bpe

    _WORKER_BPE = Gpt2Bpe(vocab, merges)


def _encode_gpt2_batch(lines: List[str]) -> Tuple[List[str], Counter]:
    counts: Counter = Counter()
    out = []
    for line in lines:
        encoded = _WORKER_BPE.encode_line(line)
        counts.update(encoded.split())
        out.append(encoded)
    return out, counts


def check_pretrained_dir(folder: str) -> Dict[str, str]:
    """The files of a converted pretrained model (pyramidion-convert's OUT_DIR) by name."""
    paths = {name: os.path.join(folder, name) for name in PRETRAINED_FILES}
    missing = [name for name, path in paths.items() if not os.path.isfile(path)]
    if missing:
        raise DataError(f"--pretrained {folder}: no {', '.join(missing)} there; give the folder "
                        "pyramidion-convert wrote (it holds the model's dictionary and BPE files)")
    return paths


def encode_files_gpt2(vocab: str, merges: str, jobs: Sequence[Tuple[str, str]], workers: int = 1
                      ) -> List[Counter]:
    """:func:`encode_files` with a pretrained BART's byte-level BPE: each document becomes its
    token ids written as decimal strings, the symbols of that model's fairseq dictionary."""
    from .gpt2_bpe import BpeError

    try:
        _init_gpt2_worker(vocab, merges)     # here first: a bad BPE file fails before any fork
        return _encode_with(_init_gpt2_worker, (vocab, merges), _encode_gpt2_batch, jobs,
                            workers, " (byte-level BPE)")
    except BpeError as err:
        raise DataError(str(err)) from None


@dataclass
class PreprocessResult:
    out_dir: str
    spm_model: Optional[str]
    dictionary: str
    dict_size: int
    counts: Dict[str, int]


_OUTPUT_PATTERNS = (re.compile(r"^.+\.src-tgt\.(src|tgt)\.(bin|idx)$"), re.compile(r"^dict\..+\.txt$"),
                    re.compile(r"^spm\.(model|vocab)$"))  # fmt: skip
#: everything a preprocess run writes into OUT (and what a half-finished older run left there)
PREPROCESSED_OWNED = owned_by(
    names=("preprocess.json", "preprocess.log", ".pieces", ".fairseq-preprocess"),
    patterns=(r".+\.src-tgt\.(src|tgt)\.(bin|idx)", r"dict\..+\.txt", r"spm\.(model|vocab)", r".+\.ids",
              r"encoder\.json", r"vocab\.bpe"),
)


def _existing_outputs(out_dir: str) -> List[str]:
    if not os.path.isdir(out_dir):
        return []
    return sorted(f for f in os.listdir(out_dir) if any(p.match(f) for p in _OUTPUT_PATTERNS))


def preprocess(
    data_dir: str,
    out_dir: str,
    vocab_size: int = 32000,
    spm_model: Optional[str] = None,
    workers: int = 1,
    splits: Sequence[str] = SPLITS,
    model_type: str = "unigram",
    character_coverage: float = 0.9995,
    input_sentence_size: int = 2_000_000,
    keep_pieces: bool = False,
    overwrite: bool = False,
    seed: Optional[int] = None,
    pretrained: Optional[str] = None,
) -> PreprocessResult:
    """The whole step (see the module docstring). Raises :class:`DataError` on bad input.

    ``pretrained``: a folder written by pyramidion-convert; its byte-level BPE (encoder.json +
    vocab.bpe) encodes the text and its dict.txt is the dictionary, so the ids are the pretrained
    model's; both BPE files are copied into ``out_dir`` for fairseq-generate --bpe gpt2 and the hub.

    Checked before any work: ``data_dir`` and ``out_dir`` are not the same folder and neither
    would be destroyed by replacing the other; ``out_dir`` holds nothing but a previous run's
    output (which needs ``overwrite``); the text splits are consistent.
    """
    if pretrained is not None and spm_model is not None:
        raise DataError("--pretrained and --spm-model exclude each other: the pretrained model brings "
                        "its own tokenizer")
    if "train" not in splits and spm_model is None and pretrained is None:
        raise DataError("without a train split a sentencepiece model must be given (--spm-model)")
    if os.path.realpath(data_dir) == os.path.realpath(out_dir):
        raise DataError(f"--data {data_dir} and --out {out_dir} are the same folder; choose another --out")
    check_not_overlapping("--out", out_dir, [("--data", data_dir), ("--pretrained", pretrained)])
    existing = _existing_outputs(out_dir)
    if existing and not overwrite:
        raise DataError(f"{out_dir} already holds preprocessed data ({', '.join(existing[:4])}, ...); pass --overwrite")
    counts = check_text_splits(data_dir, splits)
    if spm_model is not None:
        spm_pieces(spm_model)  # fails clearly when it is not a model
    files = check_pretrained_dir(pretrained) if pretrained is not None else None
    with StagedDir(out_dir, PREPROCESSED_OWNED, "--out") as stage:
        if files is not None:
            result = _preprocess_pretrained_into(stage, out_dir, data_dir, counts, files, pretrained,
                                                 workers, splits, keep_pieces)
        else:
            result = _preprocess_into(stage, out_dir, data_dir, counts, vocab_size, spm_model, workers, splits,
                                      model_type, character_coverage, input_sentence_size, keep_pieces, seed)  # fmt: skip
    result.out_dir = out_dir
    result.spm_model = os.path.join(out_dir, "spm.model") if files is None else None
    result.dictionary = os.path.join(out_dir, "dict.src.txt")
    return result


def _preprocess_pretrained_into(out_dir, final_dir, data_dir, counts, files, pretrained, workers, splits,
                                keep_pieces) -> PreprocessResult:
    """Steps 3-6 with a pretrained model's BPE and dictionary into the staged ``out_dir``."""
    pieces_dir = os.path.join(out_dir, ".pieces")
    os.makedirs(pieces_dir, exist_ok=True)
    jobs = [(os.path.join(data_dir, f"{split}.{lang}"), os.path.join(pieces_dir, f"{split}.{lang}"))
            for split in splits for lang in ("src", "tgt")]
    piece_counts = encode_files_gpt2(files["encoder.json"], files["vocab.bpe"], jobs, workers)
    symbols = read_dictionary_symbols(files["dict.txt"])
    known = set(symbols)
    total = sum(sum(c.values()) for c in piece_counts)
    unknown = sum(n for c in piece_counts for tok, n in c.items() if tok not in known)
    if unknown:
        logger.warning("%d of %d BPE tokens (%.2f%%) have no entry in %s and become <unk>", unknown, total,
                       100.0 * unknown / max(1, total), files["dict.txt"])
    run_fairseq_preprocess(pieces_dir, out_dir, files["dict.txt"], splits, workers)
    if not keep_pieces:
        shutil.rmtree(pieces_dir, ignore_errors=True)
    _check_binarized(out_dir, final_dir, data_dir, counts, splits)
    dictionary = os.path.join(out_dir, "dict.src.txt")
    if read_dictionary_symbols(dictionary) != symbols:   # fairseq keeps a --srcdict as it is
        raise DataError(f"fairseq-preprocess wrote {final_dir}/dict.src.txt with other entries than "
                        f"{files['dict.txt']}: the token ids would not be the pretrained model's")
    for name in ("encoder.json", "vocab.bpe"):
        shutil.copyfile(files[name], os.path.join(out_dir, name))
    dict_size = len(symbols) + len(FAIRSEQ_SPECIALS)
    _write_manifest(out_dir, {"data": os.path.abspath(data_dir), "bpe": "gpt2",
                              "pretrained": os.path.abspath(pretrained), "dictionary_size": dict_size,
                              "documents": counts, "unknown_tokens": unknown, "marker": MARKER})
    return PreprocessResult(out_dir, None, dictionary, dict_size, counts)


def read_dictionary_symbols(path: str) -> List[str]:
    """Every entry of a fairseq dictionary file in index order (madeupwords and <mask> included)."""
    symbols = []
    for lineno, line in iter_lines(path):
        line = line.rstrip()
        if not line:
            continue
        parts = line.rsplit(" ", 1)
        if len(parts) == 2 and parts[1] == "#fairseq:overwrite":
            parts = parts[0].rsplit(" ", 1)
        if len(parts) != 2 or not parts[1].lstrip("-").isdigit():
            raise DataError(f"{path}:{lineno}: not a fairseq dictionary line ('<word> <count>'): {line[:60]!r}")
        symbols.append(parts[0])
    return symbols


def _check_binarized(out_dir, final_dir, data_dir, counts, splits) -> None:
    """Every binarized split holds as many documents as its text; the .ids files come along."""
    for split in splits:
        for lang in ("src", "tgt"):
            n = binarized_length(os.path.join(out_dir, f"{split}.src-tgt.{lang}"))
            if n != counts[split]:
                raise DataError(
                    f"{final_dir}/{split}.src-tgt.{lang}.bin holds {n} documents but "
                    f"{data_dir}/{split}.{lang} has {counts[split]}"
                )
        ids = os.path.join(data_dir, f"{split}.ids")
        if os.path.isfile(ids):
            shutil.copyfile(ids, os.path.join(out_dir, f"{split}.ids"))


def _write_manifest(out_dir: str, manifest: dict) -> None:
    with open(os.path.join(out_dir, "preprocess.json"), "w", encoding="utf-8") as out:
        json.dump(manifest, out, indent=1)
        out.write("\n")


def _preprocess_into(out_dir, final_dir, data_dir, counts, vocab_size, spm_model, workers, splits, model_type,
                     character_coverage, input_sentence_size, keep_pieces, seed) -> PreprocessResult:
    """Steps 2-6 into the (empty, staged) ``out_dir``; messages name ``final_dir``."""
    model_path = os.path.join(out_dir, "spm.model")
    if spm_model is None:
        train_text = [os.path.join(data_dir, "train.src"), os.path.join(data_dir, "train.tgt")]
        train_spm(train_text, os.path.join(out_dir, "spm"), vocab_size, model_type, character_coverage,
                  input_sentence_size, workers, seed)  # fmt: skip
    else:
        shutil.copyfile(spm_model, model_path)
        vocab = os.path.splitext(spm_model)[0] + ".vocab"
        if os.path.isfile(vocab):
            shutil.copyfile(vocab, os.path.join(out_dir, "spm.vocab"))
        logger.info("reusing %s (copied to %s)", spm_model, model_path)

    pieces_dir = os.path.join(out_dir, ".pieces")
    os.makedirs(pieces_dir, exist_ok=True)
    jobs = [
        (os.path.join(data_dir, f"{split}.{lang}"), os.path.join(pieces_dir, f"{split}.{lang}"))
        for split in splits
        for lang in ("src", "tgt")
    ]
    piece_counts = encode_files(model_path, jobs, workers)
    train_counts: Counter = Counter()
    for (in_path, _), c in zip(jobs, piece_counts):
        if os.path.basename(in_path).startswith("train."):
            train_counts.update(c)
    dict_tmp = os.path.join(pieces_dir, "dict.txt")
    dict_size = write_dictionary(model_path, train_counts or sum(piece_counts, Counter()), dict_tmp)

    run_fairseq_preprocess(pieces_dir, out_dir, dict_tmp, splits, workers)
    if not keep_pieces:
        shutil.rmtree(pieces_dir, ignore_errors=True)

    _check_binarized(out_dir, final_dir, data_dir, counts, splits)
    dictionary = os.path.join(out_dir, "dict.src.txt")
    check_spm_dictionary(model_path, dictionary)
    _write_manifest(out_dir, {
        "data": os.path.abspath(data_dir),
        "spm_model": os.path.abspath(spm_model) if spm_model else "trained on train.src + train.tgt",
        "vocab_size_requested": None if spm_model else vocab_size,
        "dictionary_size": dict_size,
        "documents": counts,
        "marker": MARKER,
    })
    return PreprocessResult(out_dir, model_path, dictionary, dict_size, counts)

