"""Summarize raw text with a trained pyramidion checkpoint, from Python.

    from deep_pyramidion.hub import from_pretrained      # = deep_pyramidion.fairseq_plugin.hub
    summarizer = from_pretrained("runs/aclsum", checkpoint_file="checkpoint_best.pt",
                                 data_name_or_path="/abs/path/data-bin/aclsum")
    summaries = summarizer.summarize(["full text of paper one ...", "paper two ..."], beam=4,
                                     max_len_b=256, min_len=40)

``PyramidionModel.from_pretrained`` delegates here. The returned object is a fairseq
``GeneratorHubInterface`` (``.translate``, ``.generate``, ``.encode``, ``.decode`` keep working;
move it to a GPU with ``.cuda()``) with :meth:`PyramidionHubInterface.summarize` added:
sentencepiece-encode, truncate to the model's max source positions (logged, never silent), beam
search, decode.
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
            if not isinstance(text, str):
                raise TypeError(f"texts[{i}]: expected str, got {type(text).__name__}")
            if not text.strip():
                label = names[i] if names is not None and i < len(names) else f"texts[{i}]"
                raise ValueError(f"{label} is empty: there is nothing to summarize")
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


def from_pretrained(checkpoint_dir: str, checkpoint_file: str = "checkpoint_best.pt",
                    data_name_or_path: str = ".", bpe: Optional[str] = "sentencepiece",
                    sentencepiece_model: Optional[str] = None, **overrides) -> PyramidionHubInterface:
    """Load a trained pyramidion summarizer.

    checkpoint_dir: folder of the checkpoint (fairseq's save dir).
    checkpoint_file: file name inside it (``checkpoint_best.pt``, ``checkpoint_last.pt``, ...).
    data_name_or_path: the binarized data folder holding ``dict.src.txt`` / ``dict.tgt.txt``
        (scripts/preprocess.py's output); a path starting with "." is relative to checkpoint_dir,
        as in fairseq.
    bpe: ``"sentencepiece"`` (default) or None for text that is already split into dictionary
        tokens.
    sentencepiece_model: the model scripts/preprocess.py wrote; default: ``spm.model`` in the data
        folder, else in checkpoint_dir.
    overrides: fairseq options replacing the checkpoint's, e.g. ``max_source_positions=8192``
        (read longer inputs), ``batch_size=8``, ``cpu=True``.
    """
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
    if bpe == "sentencepiece":
        if sentencepiece_model is None:
            candidates = [os.path.join(data_dir, "spm.model"), os.path.join(checkpoint_dir, "spm.model")]
            sentencepiece_model = next((c for c in candidates if os.path.isfile(c)), None)
            if sentencepiece_model is None:
                raise FileNotFoundError(
                    "sentencepiece_model not given and no spm.model in "
                    f"{data_dir} or {checkpoint_dir}; pass sentencepiece_model=PATH (or bpe=None "
                    "for pre-tokenized text)")
        elif not os.path.isfile(sentencepiece_model):
            raise FileNotFoundError(f"sentencepiece_model {sentencepiece_model}: no such file")
        overrides["sentencepiece_model"] = os.path.abspath(sentencepiece_model)
    elif bpe is not None:
        raise ValueError(f"bpe must be 'sentencepiece' or None, got {bpe!r}")
    overrides["bpe"] = bpe
    # the checkpoint may name the --user-dir it was trained with (any path): use this package
    overrides["user_dir"] = USER_DIR
    loaded = hub_utils.from_pretrained(checkpoint_dir, checkpoint_file=checkpoint_file,
                                       data_name_or_path=data_dir, **overrides)
    cfg = loaded["args"]
    if bpe is None:
        with open_dict(cfg):
            cfg.bpe = None
    return PyramidionHubInterface(cfg, loaded["task"], loaded["models"])


def _listdir(path: str) -> List[str]:
    try:
        return os.listdir(path)
    except OSError:
        return []
