"""Text splits -> tokens -> binarized fairseq data named train / dev-0 / test-A: the pipeline.

Steps of :func:`preprocess`, each tokenizer's part in :mod:`deep_pyramidion.data.tokenizers`:

1. check the text splits (``{split}.src``/``{split}.tgt``: present, UTF-8, no empty document,
   same number of lines, and the same as ``{split}.ids`` when there is one);
2. the tokenizer's model: train a sentencepiece model on ``train.src`` + ``train.tgt`` (or reuse
   ``spm_model``), or, with ``pretrained``, take a converted pretrained BART's byte-level BPE and
   dictionary;
3. encode every split (:func:`encode_files`, ``--workers`` processes);
4. the dictionary: written from the sentencepiece vocabulary itself (every piece, with its count
   in the training pieces, padded to a multiple of 8 with ``madeupword`` entries), so model and
   dictionary cannot disagree; or the pretrained model's own;
5. run ``fairseq-preprocess --joined-dictionary --srcdict DICT --dataset-impl mmap`` in a
   subprocess and give its outputs our split names (:mod:`deep_pyramidion.data.fairseq_binary`):
   ``{split}.src-tgt.{src,tgt}.{bin,idx}``, which is what ``--valid-subset dev-0`` and
   ``--gen-subset test-A`` load;
6. verify: every binarized split holds as many documents as its text, and the tokenizer matches
   ``dict.src.txt`` (:func:`check_spm_dictionary`; a pretrained dictionary is kept as it is).

The output folder holds ``spm.model``/``spm.vocab`` (use it as ``--sentencepiece-model``) or
``encoder.json``/``vocab.bpe``, ``dict.src.txt``/``dict.tgt.txt`` (identical), the binarized
splits, the ``{split}.ids`` files and ``preprocess.json``. It is built beside the old one and
swapped in only when every step succeeded (:class:`~deep_pyramidion.data.output.StagedDir`): a
failing rerun leaves the previous folder as it was (its ``spm.model`` too, even when that is the
model being reused), a successful one leaves nothing of the previous run (no old ``{split}.ids``
beside new binaries).

Nothing here imports fairseq: ``fairseq-preprocess`` runs in a subprocess and the binarized
document counts are read from the ``.idx`` headers (:func:`binarized_length`).
"""

import json
import logging
import os
import re
import shutil
import sys
from collections import Counter
from dataclasses import dataclass
from typing import Dict, Iterator, List, Optional, Sequence, Tuple

from deep_pyramidion.plumbing.errors import DataError
from deep_pyramidion.plumbing.files import StagedDir, check_not_overlapping, owned_by
from deep_pyramidion.plumbing.lines import iter_lines

from .fairseq_binary import binarized_length, binary_files, fairseq_names, run_fairseq_preprocess
from .fairseq_dictionary import FAIRSEQ_SPECIALS, read_dictionary, read_dictionary_symbols
from .sentences import MARKER
from .tokenizers import (
    PRETRAINED_FILES,
    PretrainedBpe,
    SentencePieceTokenizer,
    SpmDictCheck,
    Tokenizer,
    check_pretrained_dir,
    check_spm_dictionary,
    spm_pieces,
    train_spm,
)

__all__ = [
    # the pipeline
    "SPLITS", "PREPROCESSED_OWNED", "PreprocessResult", "check_text_splits", "encode_files", "preprocess",
    # the parts, still importable from here as they were before the split
    "FAIRSEQ_SPECIALS", "PRETRAINED_FILES", "SpmDictCheck", "binarized_length", "binary_files",
    "check_pretrained_dir", "check_spm_dictionary", "fairseq_names", "read_dictionary",
    "read_dictionary_symbols", "run_fairseq_preprocess", "spm_pieces", "train_spm",
]  # fmt: skip

logger = logging.getLogger(__name__)

SPLITS = ("train", "dev-0", "test-A")


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


# --------------------------------------------------------------------------- encoding


def _batches(path: str, size: int = 64) -> Iterator[List[str]]:
    batch = []
    for _, line in iter_lines(path):
        batch.append(line)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


class _PoolWorker:
    """What a worker process of :func:`encode_files` keeps between batches: its encoder, built by
    the pool's initializer from the tokenizer the pool was given. A pool's tasks must be
    module-level callables, so the encoder is reached through this class; only worker processes
    set it, the parent encodes with an encoder of its own."""

    encoder = None

    @classmethod
    def start(cls, tokenizer: Tokenizer) -> None:
        cls.encoder = tokenizer.encoder()

    @classmethod
    def encode_batch(cls, lines: List[str]) -> Tuple[List[str], Counter]:
        return cls.encoder.encode_batch(lines)


def encode_files(tokenizer: Tokenizer, jobs: Sequence[Tuple[str, str]], workers: int = 1) -> List[Counter]:
    """Encode each ``(input, output)`` text file with ``tokenizer``, one document per line (in
    ``workers`` processes; here when 1), writing the output lines in order; returns each file's
    symbol counts."""
    results = []
    pool = None
    try:
        encoder = tokenizer.encoder()  # here first: a bad tokenizer file fails before any fork
        if workers > 1:
            import multiprocessing

            # fork where it is safe and cheap (Linux); spawn elsewhere (re-imports the package)
            method = "fork" if sys.platform.startswith("linux") else "spawn"
            pool = multiprocessing.get_context(method).Pool(workers, _PoolWorker.start, (tokenizer,))
        for in_path, out_path in jobs:
            counts: Counter = Counter()
            batches = _batches(in_path)
            mapper = pool.imap(_PoolWorker.encode_batch, batches) if pool else map(encoder.encode_batch, batches)
            with open(out_path, "w", encoding="utf-8", newline="\n") as out:
                for lines, batch_counts in mapper:
                    counts.update(batch_counts)
                    for line in lines:
                        out.write(line + "\n")
            results.append(counts)
            logger.info("encoded %s -> %s%s", in_path, out_path, tokenizer.label)
    except tokenizer.file_errors as err:
        raise DataError(str(err)) from None
    finally:
        if pool is not None:
            pool.close()
            pool.join()
    return results


# --------------------------------------------------------------------------- the whole step


@dataclass
class PreprocessResult:
    out_dir: str
    spm_model: Optional[str]   # OUT/spm.model; None with a pretrained BPE
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
    if pretrained is not None:
        tokenizer: Tokenizer = PretrainedBpe(pretrained)   # checks the folder's files
    else:
        train_text = [os.path.join(data_dir, "train.src"), os.path.join(data_dir, "train.tgt")]
        tokenizer = SentencePieceTokenizer(train_text, vocab_size, spm_model, model_type, character_coverage,
                                           input_sentence_size, workers, seed)
    with StagedDir(out_dir, PREPROCESSED_OWNED, "--out") as stage:
        dict_size = _binarize_into(stage, out_dir, data_dir, counts, tokenizer, workers, splits, keep_pieces)
    spm_path = os.path.join(out_dir, "spm.model") if isinstance(tokenizer, SentencePieceTokenizer) else None
    return PreprocessResult(out_dir, spm_path, os.path.join(out_dir, "dict.src.txt"), dict_size, counts)


def _binarize_into(out_dir: str, final_dir: str, data_dir: str, counts: Dict[str, int], tokenizer: Tokenizer,
                   workers: int, splits: Sequence[str], keep_pieces: bool) -> int:
    """Steps 2-6 into the (empty, staged) ``out_dir``; messages name ``final_dir``. Returns the
    dictionary size."""
    tokenizer.prepare(out_dir)
    pieces_dir = os.path.join(out_dir, ".pieces")
    os.makedirs(pieces_dir, exist_ok=True)
    jobs = [
        (os.path.join(data_dir, f"{split}.{lang}"), os.path.join(pieces_dir, f"{split}.{lang}"))
        for split in splits
        for lang in ("src", "tgt")
    ]
    piece_counts = encode_files(tokenizer, jobs, workers)
    vocabulary = tokenizer.dictionary(pieces_dir, jobs, piece_counts)

    run_fairseq_preprocess(pieces_dir, out_dir, vocabulary.path, splits, workers)
    if not keep_pieces:
        shutil.rmtree(pieces_dir, ignore_errors=True)

    _check_binarized(out_dir, final_dir, data_dir, counts, splits)
    tokenizer.finish(out_dir, final_dir, vocabulary)
    _write_manifest(out_dir, {
        "data": os.path.abspath(data_dir),
        **tokenizer.manifest(),
        "dictionary_size": vocabulary.size,
        "documents": counts,
        **vocabulary.manifest,
        "marker": MARKER,
    })
    return vocabulary.size


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
