"""Summarize raw text with a trained pyramidion checkpoint, from Python.

    from deep_pyramidion.hub import from_pretrained      # = deep_pyramidion.fairseq_plugin.hub
    summarizer = from_pretrained("runs/aclsum", checkpoint_file="checkpoint_best.pt",
                                 data_name_or_path="/abs/path/data-bin/aclsum")
    summaries = summarizer.summarize(["full text of paper one ...", "paper two ..."], beam=4,
                                     max_len_b=256, min_len=40)

``PyramidionModel.from_pretrained`` delegates here. The returned object is a fairseq
``GeneratorHubInterface`` (``.translate``, ``.generate``, ``.encode``, ``.decode`` keep working;
move it to a GPU with ``.cuda()``) with :meth:`PyramidionHubInterface.summarize` added:
encode with the model's BPE (sentencepiece, or a pretrained BART's byte-level BPE), truncate to the
model's max source positions (logged, never silent), beam search, decode.
"""
import logging
import os
import re
from typing import List, Optional, Sequence, Union

import torch
from fairseq import hub_utils
from fairseq.hub_utils import GeneratorHubInterface
from omegaconf import open_dict

import deep_pyramidion
import deep_pyramidion.fairseq_plugin  # noqa: F401  (registers the model, applies the patches)
from deep_pyramidion.data.sentences import MARKER
from deep_pyramidion.limits import check_max_source_positions
from deep_pyramidion.plumbing.errors import DataError, PyramidionError

logger = logging.getLogger(__name__)

USER_DIR = os.path.dirname(os.path.abspath(deep_pyramidion.__file__))
_MARKER_RE = re.compile(r"\s*" + re.escape(MARKER) + r"\s*")


class PyramidionHubInterface(GeneratorHubInterface):
    """fairseq's generator hub interface plus :meth:`summarize` for raw documents."""

    @property
    def max_source_tokens(self) -> int:
        """Most source tokens (end-of-sentence included) the model reads per document."""
        limit = self.max_positions[0] if isinstance(self.max_positions, tuple) else self.max_positions
        return int(limit)

    def encode_document(self, text: str, name: str = "document") -> torch.LongTensor:
        """Tokens of one raw document, cut to :attr:`max_source_tokens` (the cut is logged).

        Whitespace (newlines included) is collapsed: a document is one line of the training data.
        The cut keeps the first tokens and the end-of-sentence token, as fairseq's
        ``--truncate-source`` does.
        """
        tokens = self.encode(" ".join(text.split()))
        limit = self.max_source_tokens
        if tokens.numel() > limit:
            logger.warning(
                "%s: %d source tokens, truncated to the model's max source positions (%d); "
                "pass max_source_positions=N to from_pretrained to read more", name,
                tokens.numel(), limit)
            tokens = torch.cat([tokens[: limit - 1], tokens[-1:]])
        return tokens

    def summarize(self, texts: Union[str, Sequence[str]], beam: int = 4,
                  sentence_separator: str = " ", names: Optional[Sequence[str]] = None,
                  **gen_kwargs) -> List[str]:
        """One summary per input text, in input order.

        texts: a list of documents (a single ``str`` counts as one document; the result is still
            a list). An empty or whitespace-only document raises ValueError naming its index.
        beam: beam size.
        sentence_separator: replaces the sentence marker ``<q>`` of the training targets
            (``" <q> "`` keeps the project's one-document-per-line format that scripts/score.py
            reads).
        names: one label per text for log messages (default ``texts[i]``).
        gen_kwargs: generation options (fairseq's names: ``max_len_b``, ``min_len``, ``lenpen``,
            ``no_repeat_ngram_size``, ``sampling``, ...); an unknown name raises TypeError.
        """
        if isinstance(texts, str):
            texts = [texts]
        texts = list(texts)
        for i, text in enumerate(texts):
            label = names[i] if names is not None and i < len(names) else f"texts[{i}]"
            if not isinstance(text, str):
                raise TypeError(f"texts[{i}]: expected str, got {type(text).__name__}")
            if not text.strip():
                raise ValueError(f"{label} is empty: there is nothing to summarize")
            try:
                text.encode("utf-8")
            except UnicodeEncodeError as err:   # a lone surrogate: no tokenizer can read it
                raise ValueError(f"{label}: not valid Unicode text (a lone surrogate "
                                 f"{text[err.start]!r} at character {err.start}); decode the "
                                 "input with errors='replace' or fix it") from None
        if not isinstance(beam, int) or beam < 1:
            raise ValueError(f"beam must be a positive integer, got {beam!r}")
        known = set(self.cfg.generation.keys())
        unknown = sorted(k for k in gen_kwargs if k not in known)
        if unknown:
            raise TypeError(f"summarize(): unknown generation option(s) {', '.join(unknown)}; "
                            f"fairseq's generation options are: {', '.join(sorted(known))}")
        if names is None:
            names = [f"texts[{i}]" for i in range(len(texts))]
        elif len(names) != len(texts):
            raise ValueError(f"names: {len(names)} labels for {len(texts)} texts")
        if not texts:
            return []
        tokens = [self.encode_document(text, label) for text, label in zip(texts, names)]
        batched = self.generate(tokens, beam=beam, **gen_kwargs)
        if len(batched) != len(texts):  # fairseq skipped an input: never hand back a shorter list
            raise RuntimeError(f"generation returned {len(batched)} results for {len(texts)} texts")
        summaries = []
        for hypos in batched:
            text = self.decode(hypos[0]["tokens"])
            summaries.append(_MARKER_RE.sub(sentence_separator, text).strip())
        return summaries


BPE_CHOICES = ("auto", "sentencepiece", "gpt2", None)
GPT2_FILES = ("encoder.json", "vocab.bpe")   # what pyramidion-convert and preprocess.py write


def from_pretrained(checkpoint_dir: str, checkpoint_file: str = "checkpoint_best.pt",
                    data_name_or_path: str = ".", bpe: Optional[str] = "auto",
                    sentencepiece_model: Optional[str] = None, gpt2_encoder_json: Optional[str] = None,
                    gpt2_vocab_bpe: Optional[str] = None, **overrides) -> PyramidionHubInterface:
    """Load a trained pyramidion summarizer.

    checkpoint_dir: folder of the checkpoint (fairseq's save dir; pyramidion-convert's OUT_DIR).
    checkpoint_file: file name inside it (``checkpoint_best.pt``, ``model.pt``, ...).
    data_name_or_path: the binarized data folder holding ``dict.src.txt`` / ``dict.tgt.txt``
        (scripts/preprocess.py's output); a path starting with "." is relative to checkpoint_dir,
        as in fairseq.
    bpe: how raw text becomes dictionary tokens. ``"auto"`` (default): the sentencepiece model
        ``spm.model`` if the data folder (else checkpoint_dir) has one, else the byte-level BPE
        of a pretrained BART (``encoder.json`` + ``vocab.bpe``) found the same way;
        ``"sentencepiece"`` or ``"gpt2"`` to insist on one; None for text already split into
        dictionary tokens.
    sentencepiece_model, gpt2_encoder_json, gpt2_vocab_bpe: the files, when not found as above.
    overrides: fairseq options replacing the checkpoint's, e.g. ``max_source_positions=8192``
        (read longer inputs; at most ``deep_pyramidion.limits.MAX_SOURCE_POSITIONS``, else
        ValueError), ``batch_size=8``, ``cpu=True``.
    """
    if "max_source_positions" in overrides:   # the position table is built from it
        check_max_source_positions(overrides["max_source_positions"], "max_source_positions")
    checkpoint_dir = os.path.abspath(os.path.expanduser(str(checkpoint_dir)))
    if not os.path.isdir(checkpoint_dir):
        raise FileNotFoundError(f"checkpoint_dir {checkpoint_dir}: no such folder")
    for name in str(checkpoint_file).split(os.pathsep):
        path = os.path.join(checkpoint_dir, name)
        if not os.path.isfile(path):
            raise FileNotFoundError(f"checkpoint_file {path}: no such file")
    data_name_or_path = str(data_name_or_path)
    data_dir = (os.path.join(checkpoint_dir, data_name_or_path)
                if data_name_or_path.startswith(".") else os.path.expanduser(data_name_or_path))
    data_dir = os.path.abspath(data_dir)
    if not os.path.isfile(os.path.join(data_dir, "dict.src.txt")) and \
            not any(f.startswith("dict.") for f in _listdir(data_dir)):
        raise FileNotFoundError(
            f"data_name_or_path {data_dir}: no fairseq dictionary (dict.*.txt) there; pass the "
            "binarized data folder the model was trained on")
    if bpe not in BPE_CHOICES:
        raise ValueError(f"bpe must be one of {', '.join(map(repr, BPE_CHOICES))}, got {bpe!r}")
    overrides.update(_bpe_overrides(bpe, (data_dir, checkpoint_dir), sentencepiece_model,
                                    gpt2_encoder_json, gpt2_vocab_bpe))
    if all(os.path.isfile(os.path.join(data_dir, f"dict.{lang}.txt")) for lang in ("src", "tgt")):
        # the project's language names; fairseq cannot infer them from a folder that holds only
        # the dictionaries (a checkpoint trained without --source-lang / --target-lang)
        overrides.setdefault("source_lang", "src")
        overrides.setdefault("target_lang", "tgt")
    # the checkpoint may name the --user-dir it was trained with (any path): use this package
    overrides["user_dir"] = USER_DIR
    check_model_files(data_dir, overrides)
    try:
        loaded = hub_utils.from_pretrained(checkpoint_dir, checkpoint_file=checkpoint_file,
                                           data_name_or_path=data_dir, **overrides)
    except PyramidionError:
        raise
    except Exception as err:
        _explain_not_a_pyramidion(checkpoint_dir, checkpoint_file, err)
        raise
    cfg = loaded["args"]
    if overrides["bpe"] is None:
        with open_dict(cfg):
            cfg.bpe = None
    return PyramidionHubInterface(cfg, loaded["task"], loaded["models"])


def check_model_files(data_dir: str, overrides: dict) -> None:
    """Read the files fairseq will read before it does, so that a damaged one is a DataError
    naming it (one line in the command lines) instead of an exception from deep inside fairseq's
    loaders (json, int(), sentencepiece's C++): the BPE files, the dictionaries of the languages
    used (every dict.*.txt when they are not known yet)."""
    from deep_pyramidion.data.gpt2_bpe import read_merges, read_vocab

    if overrides.get("bpe") == "gpt2":
        read_vocab(overrides["gpt2_encoder_json"])        # BpeError naming the file and line
        read_merges(overrides["gpt2_vocab_bpe"])
    elif overrides.get("bpe") == "sentencepiece":
        _check_sentencepiece(overrides["sentencepiece_model"])
    langs = [overrides.get("source_lang"), overrides.get("target_lang")]
    names = [f"dict.{lang}.txt" for lang in langs if lang] or \
        sorted(f for f in _listdir(data_dir) if f.startswith("dict.") and f.endswith(".txt"))
    for name in names:
        path = os.path.join(data_dir, name)
        if os.path.isfile(path):
            _check_dictionary(path)


def _check_sentencepiece(path: str) -> None:
    import sentencepiece

    try:
        sentencepiece.SentencePieceProcessor(model_file=path)
    except Exception as err:  # sentencepiece raises RuntimeError / OSError with C++ messages
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise DataError(f"{path}: not a sentencepiece model ({reason}); the data folder's "
                        "spm.model is the one scripts/preprocess.py trained") from None


def _check_dictionary(path: str) -> None:
    """fairseq's own reader on the file, its failures (a line without a count, a duplicate
    symbol, bytes that are not UTF-8) turned into one DataError naming the file."""
    from fairseq.data import Dictionary

    try:
        Dictionary.load(path)
    except Exception as err:  # ValueError, RuntimeError and bare Exception, by fairseq's choice
        reason = " ".join(str(err).split())
        raise DataError(f"{path}: not a fairseq dictionary: {reason[:300]}") from None


def _explain_not_a_pyramidion(checkpoint_dir: str, checkpoint_file: str, err: Exception) -> None:
    """After fairseq failed to load the checkpoint: if it holds another kind of model (a
    pretrained BART not converted yet, trained with fairseq's denoising task), say that in one
    DataError; otherwise return and let the original exception (a bug) go on."""
    from fairseq import checkpoint_utils

    path = os.path.join(checkpoint_dir, str(checkpoint_file).split(os.pathsep)[0])
    try:
        state = checkpoint_utils.load_checkpoint_to_cpu(path)
        cfg = state.get("cfg") or {}
        model_cfg = _field(cfg, "model") or state.get("args")
        arch = str(_field(model_cfg, "arch") or _field(model_cfg, "_name") or "")
        task = _field(_field(cfg, "task"), "_name") or _field(state.get("args"), "task")
    except Exception:  # cannot tell what it holds: keep fairseq's own error
        return
    if arch.startswith("pyramidion") or not arch:
        return
    raise DataError(
        f"{path}: a {arch} model{f' of the {task} task' if task else ''}, not a pyramidion "
        f"summarizer, so it cannot be loaded as one ({type(err).__name__}); a pretrained BART "
        f"becomes one with pyramidion-convert {os.path.dirname(path)} OUT_DIR "
        "--max-source-positions N (then fine-tune it)") from None


def _field(config, key):
    """``config[key]`` of a dict or DictConfig, ``config.key`` of a Namespace; None if absent."""
    if config is None:
        return None
    if hasattr(config, "get") and not isinstance(config, type):
        try:
            return config.get(key)
        except Exception:  # a DictConfig in struct mode
            return None
    return getattr(config, key, None)


def _bpe_overrides(bpe, folders, spm_model, encoder_json, vocab_bpe) -> dict:
    """fairseq's --bpe options for ``bpe`` (see from_pretrained), files checked to exist."""
    if bpe is None:
        return {"bpe": None}
    for name, given in (("sentencepiece_model", spm_model), ("gpt2_encoder_json", encoder_json),
                        ("gpt2_vocab_bpe", vocab_bpe)):
        if given is not None and not os.path.isfile(given):
            raise FileNotFoundError(f"{name} {given}: no such file")
    if bpe == "auto" and (encoder_json or vocab_bpe):
        bpe = "gpt2"
    elif bpe == "auto" and spm_model:
        bpe = "sentencepiece"
    if bpe in ("auto", "sentencepiece") and spm_model is None:
        spm_model = next((os.path.join(f, "spm.model") for f in folders
                          if os.path.isfile(os.path.join(f, "spm.model"))), None)
    if bpe in ("auto", "sentencepiece") and spm_model is not None:
        return {"bpe": "sentencepiece", "sentencepiece_model": os.path.abspath(spm_model)}
    if bpe in ("auto", "gpt2") and encoder_json is None and vocab_bpe is None:
        found = next((f for f in folders
                      if all(os.path.isfile(os.path.join(f, n)) for n in GPT2_FILES)), None)
        if found is not None:
            encoder_json, vocab_bpe = (os.path.join(found, n) for n in GPT2_FILES)
    if bpe in ("auto", "gpt2") and encoder_json and vocab_bpe:
        return {"bpe": "gpt2", "gpt2_encoder_json": os.path.abspath(encoder_json),
                "gpt2_vocab_bpe": os.path.abspath(vocab_bpe)}
    wanted = {"sentencepiece": "spm.model", "gpt2": "encoder.json + vocab.bpe"}.get(
        bpe, "spm.model or encoder.json + vocab.bpe")
    raise FileNotFoundError(
        f"no {wanted} in {' or '.join(folders)}: pass sentencepiece_model=PATH, or "
        "gpt2_encoder_json=PATH and gpt2_vocab_bpe=PATH (or bpe=None for text already in "
        "dictionary tokens)")


def _listdir(path: str) -> List[str]:
    try:
        return os.listdir(path)
    except OSError:
        return []
