"""The tokenizers preprocessing can binarize with: what turns text into the symbols of a fairseq
dictionary, and what each brings to the output folder.

- :class:`SentencePieceTokenizer`: a sentencepiece model trained on ``train.src`` + ``train.tgt``
  (or reused); the dictionary is written from the model's own pieces, so model and dictionary
  cannot disagree (:func:`check_spm_dictionary` verifies it).
- :class:`PretrainedBpe`: a converted pretrained BART's byte-level BPE (encoder.json + vocab.bpe,
  :mod:`deep_pyramidion.data.gpt2_bpe`) and its dict.txt, so the token ids are the model's.

:class:`Tokenizer` is what :func:`deep_pyramidion.data.binarize.preprocess` calls, in this order:
``prepare`` (model files into the staged output folder), ``encoder`` (in this process and in every
worker process; a tokenizer is pickled to the workers, so it holds paths, not loaded models),
``dictionary`` (the ``--srcdict`` for fairseq-preprocess), then ``finish`` (checks against the
binarized dictionary, tokenizer files beside it). An encoded document is one line of symbols
separated by single spaces.
"""

import logging
import os
import shutil
from abc import ABC, abstractmethod
from collections import Counter
from dataclasses import dataclass, field
from typing import Dict, Iterable, Iterator, List, Optional, Sequence, Tuple

from deep_pyramidion.plumbing.errors import DataError
from deep_pyramidion.plumbing.lines import iter_lines

from .fairseq_dictionary import FAIRSEQ_SPECIALS, read_dictionary, read_dictionary_symbols, write_dictionary
from .sentences import MARKER, split_marked

# the log lines of preprocessing keep the logger name they were written under before this module
# was split from binarize.py, so the command prints what it always printed
logger = logging.getLogger("deep_pyramidion.data.binarize")

PRETRAINED_FILES = ("dict.txt", "encoder.json", "vocab.bpe")   # what pyramidion-convert writes


@dataclass
class Vocabulary:
    """The dictionary fairseq-preprocess is given: its path, its size with fairseq's 4 specials,
    and what ``preprocess.json`` records about it beyond the size."""
    path: str
    size: int
    manifest: Dict[str, object] = field(default_factory=dict)
    symbols: List[str] = field(default_factory=list)


class Encoder(ABC):
    @abstractmethod
    def encode_batch(self, lines: List[str]) -> Tuple[List[str], Counter]:
        """The encoded lines and the count of each symbol in them."""


class Tokenizer(ABC):
    #: appended to the "encoded IN -> OUT" log line
    label = ""
    #: exceptions that mean the tokenizer's own files are bad: reported as DataError
    file_errors: Tuple[type, ...] = ()

    def prepare(self, out_dir: str) -> None:
        """Put the model files into the (staged) output folder before anything is encoded."""

    @abstractmethod
    def encoder(self) -> Encoder:
        """A loaded encoder (built once per process)."""

    @abstractmethod
    def dictionary(self, pieces_dir: str, jobs: Sequence[Tuple[str, str]], counts: List[Counter]) -> Vocabulary:
        """The dictionary for the encoded ``jobs`` (``(text, pieces)`` paths; ``counts`` per job)."""

    @abstractmethod
    def finish(self, out_dir: str, final_dir: str, vocabulary: Vocabulary) -> None:
        """Check the binarized ``out_dir/dict.src.txt`` (messages name ``final_dir``) and put what
        decoding needs beside it."""

    @abstractmethod
    def manifest(self) -> Dict[str, object]:
        """What ``preprocess.json`` records about the tokenizer."""


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
    """Train ``{model_prefix}.model``/``.vocab``; returns the model path. The sentence marker
    ``<q>`` is a user-defined symbol, so it is always one piece; on a corpus too small for
    ``vocab_size`` the model comes out smaller (``hard_vocab_limit=False``) and a warning says so."""
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


class _SpmEncoder(Encoder):
    def __init__(self, model_path: str):
        self.sp = _import_spm().SentencePieceProcessor(model_file=model_path)

    def encode_batch(self, lines: List[str]) -> Tuple[List[str], Counter]:
        counts: Counter = Counter()
        out = []
        for pieces in self.sp.encode(lines, out_type=str):
            counts.update(pieces)
            # fairseq reads the piece files with universal newlines: a \r would end a line there
            out.append(" ".join(pieces).replace("\r", " "))
        return out, counts


@dataclass
class SentencePieceTokenizer(Tokenizer):
    """A sentencepiece model trained on ``train_text`` into ``OUT/spm.model`` (``spm.vocab``
    beside it), or ``reuse`` (a model path) copied there with its ``.vocab`` when there is one."""
    train_text: Sequence[str] = ()
    vocab_size: int = 32000
    reuse: Optional[str] = None
    model_type: str = "unigram"
    character_coverage: float = 0.9995
    input_sentence_size: int = 2_000_000
    threads: int = 1
    seed: Optional[int] = None
    model_path: Optional[str] = None   # OUT/spm.model once prepared

    def prepare(self, out_dir: str) -> None:
        self.model_path = os.path.join(out_dir, "spm.model")
        if self.reuse is None:
            train_spm(self.train_text, os.path.join(out_dir, "spm"), self.vocab_size, self.model_type,
                      self.character_coverage, self.input_sentence_size, self.threads, self.seed)
        else:
            shutil.copyfile(self.reuse, self.model_path)
            vocab = os.path.splitext(self.reuse)[0] + ".vocab"
            if os.path.isfile(vocab):
                shutil.copyfile(vocab, os.path.join(out_dir, "spm.vocab"))
            logger.info("reusing %s (copied to %s)", self.reuse, self.model_path)

    def encoder(self) -> Encoder:
        return _SpmEncoder(self.model_path)

    def dictionary(self, pieces_dir, jobs, counts) -> Vocabulary:
        """Every piece of the model, counted in the training split's pieces (all splits' without
        one), padded to a multiple of 8."""
        train_counts: Counter = Counter()
        for (in_path, _), c in zip(jobs, counts):
            if os.path.basename(in_path).startswith("train."):
                train_counts.update(c)
        pieces = [p for p in spm_pieces(self.model_path) if p not in FAIRSEQ_SPECIALS]
        bad = [p for p in pieces if p != "".join(p.split())]
        if bad:
            logger.warning("leaving %d pieces with whitespace out of the dictionary: %s", len(bad), bad[:5])
            pieces = [p for p in pieces if p not in bad]
        path = os.path.join(pieces_dir, "dict.txt")
        size = write_dictionary(pieces, train_counts or sum(counts, Counter()), path)
        return Vocabulary(path, size)

    def finish(self, out_dir, final_dir, vocabulary) -> None:
        check_spm_dictionary(self.model_path, os.path.join(out_dir, "dict.src.txt"))

    def manifest(self) -> Dict[str, object]:
        return {"spm_model": os.path.abspath(self.reuse) if self.reuse else "trained on train.src + train.tgt",
                "vocab_size_requested": None if self.reuse else self.vocab_size}


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


# --------------------------------------------------------------------------- a pretrained BART's BPE


def check_pretrained_dir(folder: str) -> Dict[str, str]:
    """The files of a converted pretrained model (pyramidion-convert's OUT_DIR) by name."""
    paths = {name: os.path.join(folder, name) for name in PRETRAINED_FILES}
    missing = [name for name, path in paths.items() if not os.path.isfile(path)]
    if missing:
        raise DataError(f"--pretrained {folder}: no {', '.join(missing)} there; give the folder "
                        "pyramidion-convert wrote (it holds the model's dictionary and BPE files)")
    return paths


class _Gpt2Encoder(Encoder):
    def __init__(self, vocab: str, merges: str):
        from .gpt2_bpe import Gpt2Bpe

        self.bpe = Gpt2Bpe(vocab, merges)

    def encode_batch(self, lines: List[str]) -> Tuple[List[str], Counter]:
        counts: Counter = Counter()
        out = []
        for line in lines:
            encoded = self.bpe.encode_line(line)
            counts.update(encoded.split())
            out.append(encoded)
        return out, counts


class PretrainedBpe(Tokenizer):
    """``folder`` (pyramidion-convert's OUT_DIR): each document becomes its token ids written as
    decimal strings, the symbols of the model's dict.txt; encoder.json + vocab.bpe are copied into
    OUT for fairseq-generate --bpe gpt2 and the hub."""
    label = " (byte-level BPE)"

    def __init__(self, folder: str):
        from .gpt2_bpe import BpeError

        self.folder = folder
        self.files = check_pretrained_dir(folder)
        self.file_errors = (BpeError,)

    def encoder(self) -> Encoder:
        return _Gpt2Encoder(self.files["encoder.json"], self.files["vocab.bpe"])

    def dictionary(self, pieces_dir, jobs, counts) -> Vocabulary:
        """The model's dict.txt as it is; tokens it lacks become <unk>, with a warning."""
        symbols = read_dictionary_symbols(self.files["dict.txt"])
        known = set(symbols)
        total = sum(sum(c.values()) for c in counts)
        missing: Counter = Counter()
        for c in counts:
            missing.update({tok: n for tok, n in c.items() if tok not in known})
        unknown = sum(missing.values())
        if unknown:
            logger.warning("%d of %d BPE tokens (%.2f%%) have no entry in %s and become <unk>; the "
                           "most frequent: %s", unknown, total, 100.0 * unknown / max(1, total),
                           self.files["dict.txt"], self._shown(missing.most_common(10)))
        return Vocabulary(self.files["dict.txt"], len(symbols) + len(FAIRSEQ_SPECIALS),
                          {"unknown_tokens": unknown}, symbols)

    def _shown(self, most_common) -> str:
        """BPE ids with their encoder.json text, so a reader sees what was dropped."""
        import json

        try:
            with open(self.files["encoder.json"], encoding="utf-8") as fh:
                text_of = {str(i): t for t, i in json.load(fh).items()}
        except (OSError, ValueError, AttributeError):
            text_of = {}
        return ", ".join(f"{tok} {text_of.get(tok, '?')!r} x{n}" for tok, n in most_common)

    def finish(self, out_dir, final_dir, vocabulary) -> None:
        if read_dictionary_symbols(os.path.join(out_dir, "dict.src.txt")) != vocabulary.symbols:
            # fairseq keeps a --srcdict as it is; anything else would shift the ids
            raise DataError(f"fairseq-preprocess wrote {final_dir}/dict.src.txt with other entries than "
                            f"{self.files['dict.txt']}: the token ids would not be the pretrained model's")
        for name in ("encoder.json", "vocab.bpe"):
            shutil.copyfile(self.files[name], os.path.join(out_dir, name))

    def manifest(self) -> Dict[str, object]:
        return {"bpe": "gpt2", "pretrained": os.path.abspath(self.folder)}
