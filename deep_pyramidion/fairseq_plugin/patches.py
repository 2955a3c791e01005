"""Every change the plugin makes to fairseq's own behaviour, in one table.

fairseq 0.12 / main has defects that silently cost data or quality, or stop a run, and that the
plugin cannot fix from its own model code. Each fix is one named :class:`Patch` below: it wraps a
single fairseq function, says which upstream issue it works around, keeps fairseq's contract
(arguments, return value) and adds only the fix. The adapter applies them when fairseq imports the
plugin (``--user-dir deep_pyramidion``) and logs, once, at INFO::

    deep_pyramidion patches fairseq: keep_last_batch, safe_checkpoint_loading, ...
    (switch one off with DEEP_PYRAMIDION_NO_PATCHES=name,...; see deep_pyramidion/fairseq_plugin/patches.py)

``DEEP_PYRAMIDION_NO_PATCHES=keep_last_batch,atomic_checkpoint_copy`` (or ``all``) leaves those
fairseq functions as they are; that is logged at WARNING, also by the plugin's own commands, which
configure logging only after the import (:func:`log_pending`). An unknown name stops the import
with a ValueError naming the variable and the valid names (one line, ``error: ...``, when the
process is a command line). Under torch >= 2.6 switching off ``safe_checkpoint_loading`` leaves
every fairseq checkpoint unloadable (torch's safe loader refuses the configuration classes they
hold): the warning says so, and a command that then fails to load one ends with one line saying
why instead of torch's 35-line message. :func:`revert_all` puts fairseq's originals back (tests,
debugging).

    name                     fairseq function                              upstream
    one_line_errors          sys.excepthook (fairseq's command lines)      -
    keep_last_batch          fairseq.data.data_utils.batch_by_size         fairseq#5036, #5351
    safe_checkpoint_loading  fairseq.checkpoint_utils.load_checkpoint_to_cpu  fairseq#5610, #5603
    atomic_checkpoint_copy   fairseq.file_io.PathManager.copy              fairseq#2684
    bf16_without_tpu         fairseq.distributed.utils.call_main           fairseq#4696, #2742
    ngram_blocking           fairseq.ngram_repeat_block.NGramRepeatBlock._no_repeat_ngram
                                                                           fairseq#5206, #4709
    linear_bpe_merge         fairseq.data.encoders.gpt2_bpe_utils.Encoder.bpe  openai/gpt-2#339
    gpt2_decode_fillers      fairseq.data.encoders.gpt2_bpe.GPT2BPE.decode  fairseq#1817
"""
import functools
import importlib
import logging
import math
import os
import sys
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional

logger = logging.getLogger(__name__)

DISABLE_ENV = "DEEP_PYRAMIDION_NO_PATCHES"
_MARK = "__deep_pyramidion_patch__"


@dataclass
class Patch:
    """One fairseq function replaced by ``wrap(original)``.

    target: ``"module:attribute"`` or ``"module:Class.attribute"``. ``setup`` runs on apply and
    returns the function that undoes it (for process-wide state beyond the attribute, e.g. torch's
    safe-globals list).
    """

    name: str
    target: str
    upstream: str
    summary: str
    wrap: Callable[[Callable], Callable]
    setup: Optional[Callable[[], Callable[[], None]]] = None

    def __post_init__(self):
        self._original = None
        self._undo_setup = None

    def _owner_and_name(self):
        module_name, _, path = self.target.partition(":")
        owner = importlib.import_module(module_name)
        *parents, name = path.split(".")
        for parent in parents:
            owner = getattr(owner, parent)
        return owner, name

    @property
    def applied(self) -> bool:
        return self._original is not None

    def current(self) -> Callable:
        owner, name = self._owner_and_name()
        return getattr(owner, name)

    def apply(self) -> None:
        if self.applied:
            return
        owner, name = self._owner_and_name()
        raw = owner.__dict__[name] if isinstance(owner, type) else getattr(owner, name)
        function = raw.__func__ if isinstance(raw, staticmethod) else raw
        if getattr(function, _MARK, None) == self.name:  # applied by another copy of this module
            return
        wrapper = self.wrap(function)
        setattr(wrapper, _MARK, self.name)
        self._undo_setup = self.setup() if self.setup is not None else None
        setattr(owner, name, staticmethod(wrapper) if isinstance(raw, staticmethod) else wrapper)
        self._original = raw

    def revert(self) -> None:
        if not self.applied:
            return
        owner, name = self._owner_and_name()
        setattr(owner, name, self._original)
        if self._undo_setup is not None:
            self._undo_setup()
        self._original = self._undo_setup = None


# ---------------------------------------------------------------------------- one_line_errors
def _one_line_errors(excepthook):
    """fairseq's command lines let every exception end the process with a traceback, so the
    plugin's expected failures (a bad model flag, a damaged or refused checkpoint: every
    PyramidionError, plumbing/errors.py) printed their one-line message at the bottom of a
    stack trace. For those alone the hook prints ``error: <message>``; the exit status stays 1, and
    every other exception (a bug) keeps its traceback through the previous hook."""
    import sys

    from deep_pyramidion.plumbing.errors import PyramidionError

    @functools.wraps(excepthook)
    def hook(kind, value, traceback):
        if isinstance(value, PyramidionError):
            sys.stderr.write("error: " + " ".join(str(value).split("\n")) + "\n")
            return
        excepthook(kind, value, traceback)

    return hook


# ---------------------------------------------------------------------------- keep_last_batch
def _keep_last_batch(batch_by_size):
    """fairseq main ends ``batch_by_size`` with ``if bsz_mult > 1 and len(b[-1]) % bsz_mult != 0:
    b = b[:-1]``: with the default --required-batch-size-multiple 8 the last batch is thrown away
    whenever its size is not a multiple of 8, in training, validation and generation alike. For a
    summarizer that is data loss (ROUGE over a different set than the references). Batches are cut
    from ``indices`` in order, so the dropped examples are exactly the tail no batch holds: it is
    appended as a last batch. fairseq 0.12.2 has no such line, and nothing is appended there."""
    import numpy as np

    @functools.wraps(batch_by_size)
    def wrapper(indices, *args, **kwargs):
        fixed_shapes = kwargs.get("fixed_shapes", args[5] if len(args) > 5 else None)
        if fixed_shapes is not None:
            # the fixed-shapes path never had the drop; its batches are not cut in order
            return batch_by_size(indices, *args, **kwargs)
        if not isinstance(indices, np.ndarray):
            indices = np.fromiter(indices, dtype=np.int64, count=-1)
        batches = batch_by_size(indices, *args, **kwargs)
        batched = sum(len(b) for b in batches)
        if batched < len(indices):
            tail = indices[batched:]
            logger.debug("keeping the last batch of %d examples that fairseq would drop", len(tail))
            batches = list(batches) + [tail]
        return batches

    return wrapper


# ---------------------------------------------------------------------------- checkpoints
def _safe_loading(load_checkpoint_to_cpu):
    """torch >= 2.6 loads with weights_only=True and fairseq checkpoints hold configuration
    classes it refuses; and a truncated or bit-flipped file fails deep inside the unpickler (or
    loads silently). The wrapper checks the file first and turns unpickler failures into one
    CheckpointError naming the file (checkpoint_safety.py); ``_allow_fairseq_classes`` allowlists
    exactly fairseq's configuration classes instead of turning the safe loader off."""
    from deep_pyramidion.fairseq_plugin import checkpoint_safety

    return checkpoint_safety.checked_loader(load_checkpoint_to_cpu)


def _allow_fairseq_classes() -> Callable[[], None]:
    import torch

    from deep_pyramidion.fairseq_plugin import checkpoint_safety

    checkpoint_safety.warn_if_safe_loading_is_off()
    if not hasattr(torch.serialization, "add_safe_globals"):
        return lambda: None
    before = list(torch.serialization.get_safe_globals())
    torch.serialization.add_safe_globals(checkpoint_safety.trusted_globals())

    def undo():
        torch.serialization.clear_safe_globals()
        torch.serialization.add_safe_globals(before)

    return undo


def _atomic_copy(copy):
    """fairseq writes ``checkpoint_1_400.pt`` atomically but then *copies* it to
    ``checkpoint_last.pt``; a job killed during that copy left a truncated file and the restart
    failed. Local copies go to a temporary file beside the destination and are renamed onto it."""
    from deep_pyramidion.fairseq_plugin import checkpoint_safety

    return checkpoint_safety.atomic_copy(copy)


# ---------------------------------------------------------------------------- --bf16
def _without_implied_tpu(call_main):
    """fairseq 0.12 reads ``--bf16`` as "train on a TPU": ``options.parse_args_and_arch`` sets
    ``args.tpu = True`` whenever bf16 is on, and the trainer then asks torch_xla for a device, so
    ``fairseq-train --bf16`` stops with ``'NoneType' object has no attribute 'xla_device'`` on a CPU
    or a CUDA GPU. The user module is imported inside that very parse, too late to change it, but
    every fairseq-train run goes through ``call_main`` afterwards; there, when torch_xla is not
    installed (so a TPU run could not work anyway), the implied TPU is turned off and fairseq's own
    bf16 path runs (model in bfloat16, float32 master weights)."""
    import importlib.util

    @functools.wraps(call_main)
    def wrapper(cfg, main, **kwargs):
        common = cfg.common
        if getattr(common, "bf16", False) and getattr(common, "tpu", False) \
                and importlib.util.find_spec("torch_xla") is None:
            logger.info("--bf16 without torch_xla: bfloat16 on %s, not on a TPU "
                        "(fairseq 0.12 reads --bf16 as --tpu)", "the CPU" if common.cpu else "CUDA")
            common.tpu = False
        return call_main(cfg, main, **kwargs)

    return wrapper


# ---------------------------------------------------------------------------- n-gram blocking
def _ngram_blocking(_broken):
    """``--no-repeat-ngram-size N`` blocks nothing on fairseq's CPU path: ``_no_repeat_ngram``
    compares the n-gram being extended with the last N-1 entries of the whole preallocated token
    buffer, which are padding, instead of the N-1 tokens up to ``step``; for N = 1 it compares
    lists of different lengths. The replacement bans, for every row, each token t such that the
    generated tokens 1..step followed by t would repeat an N-gram: every earlier window
    tokens[i : i+N-1] equal to tokens[step-N+2 : step+1] bans tokens[i+N-1]. Position 0 holds the
    start symbol, not a generated token, and belongs to no n-gram. (fairseq's CUDA kernel, left as
    it is, computes the same for N >= 2; it also counts position 0, which for N = 1 bans the end
    of sentence, the start symbol's id.) Vectorised over rows; lprobs is updated in place and
    returned, as fairseq's contract says."""
    def _no_repeat_ngram(self, tokens, lprobs, bsz: int, beam_size: int, step: int):
        n = self.no_repeat_ngram_size
        windows = step + 1 - n                  # earlier n-grams among tokens 1..step
        if windows <= 0:
            return lprobs
        seen = tokens[:, 1: step + 1].unfold(1, n, 1)[:, :windows]  # (rows, windows, n)
        current = tokens[:, step + 2 - n: step + 1]                 # (rows, n - 1)
        match = (seen[:, :, : n - 1] == current.unsqueeze(1)).all(dim=2)  # (rows, windows)
        rows, where = match.nonzero(as_tuple=True)
        lprobs[rows, seen[rows, where, n - 1]] = -math.inf
        return lprobs

    return _no_repeat_ngram


# ---------------------------------------------------------------------------- --bpe gpt2
def _linear_bpe_merge(bpe):
    """fairseq's ``--bpe gpt2`` (``gpt2_bpe_utils.Encoder.bpe``: GPT-2's own loop, from
    openai/gpt-2's encoder.py, where #339 proposes a faster one; fairseq has no issue of its own)
    rescans the whole word for every merge round, so one long word (base64, a URL, DNA: a
    100k-letter word took 85x longer than the same letters as words) costs rounds x letters, and a
    10 MB line hours.
    The replacement gives the same tokens from a heap of ranked pairs over a linked list of
    symbols, O(n log n) (deep_pyramidion/data/gpt2_bpe.py: merge_word); fairseq's cache and its
    return value (the tokens joined by spaces) are kept."""
    from deep_pyramidion.data.gpt2_bpe import merge_word

    @functools.wraps(bpe)
    def wrapper(self, token):
        if token in self.cache:
            return self.cache[token]
        if len(token) < 2:          # fairseq returns a word without pairs uncached
            return token
        word = " ".join(merge_word(token, self.bpe_ranks))
        self.cache[token] = word
        return word

    return wrapper


def _gpt2_decode_fillers(decode):
    """A BART's dictionary names the embedding rows that have no BPE token ``madeupwordNNNN``
    (bart.base: 51201 rows for 50265 entries; pyramidion-convert writes them the same way).
    fairseq's ``GPT2BPE.decode`` turns every symbol but <unk> and <mask> into a BPE id with int(),
    so a model that emits one of them crashed fairseq-generate, fairseq-interactive and
    summarize() with "invalid literal for int()" (fairseq#1817 is that error). They stand for no
    text: they are decoded to nothing; every other symbol is fairseq's business as before."""
    import re

    filler = re.compile(r"madeupword\d+")

    @functools.wraps(decode)
    def wrapper(self, x: str) -> str:
        return decode(self, " ".join(t for t in x.split() if not filler.fullmatch(t)))

    return wrapper


PATCHES: List[Patch] = [
    Patch("one_line_errors", "sys:excepthook", "-", "an expected failure ends fairseq's command "
          "lines with one line, not a traceback", _one_line_errors),
    Patch("keep_last_batch", "fairseq.data.data_utils:batch_by_size", "fairseq#5036, #5351",
          "the last partial batch is kept, not dropped", _keep_last_batch),
    Patch("safe_checkpoint_loading", "fairseq.checkpoint_utils:load_checkpoint_to_cpu",
          "fairseq#5610, #5603", "checkpoints load under torch's safe loader; damaged files get "
          "one clear error", _safe_loading, setup=_allow_fairseq_classes),
    Patch("atomic_checkpoint_copy", "fairseq.file_io:PathManager.copy", "fairseq#2684",
          "checkpoint_last.pt is replaced atomically", _atomic_copy),
    Patch("bf16_without_tpu", "fairseq.distributed.utils:call_main", "fairseq#4696, #2742",
          "--bf16 runs on CPU/CUDA when torch_xla is not installed", _without_implied_tpu),
    Patch("ngram_blocking", "fairseq.ngram_repeat_block:NGramRepeatBlock._no_repeat_ngram",
          "fairseq#5206, #4709", "--no-repeat-ngram-size blocks repeated n-grams on the CPU path",
          _ngram_blocking),
    Patch("linear_bpe_merge", "fairseq.data.encoders.gpt2_bpe_utils:Encoder.bpe",
          "openai/gpt-2#339", "--bpe gpt2 encodes a long word in O(n log n), not rounds x "
          "letters", _linear_bpe_merge),
    Patch("gpt2_decode_fillers", "fairseq.data.encoders.gpt2_bpe:GPT2BPE.decode", "fairseq#1817",
          "--bpe gpt2 decodes a madeupwordNNNN filler to nothing instead of crashing",
          _gpt2_decode_fillers),
]
BY_NAME: Dict[str, Patch] = {p.name: p for p in PATCHES}


def disabled_names() -> List[str]:
    """Patches switched off by DEEP_PYRAMIDION_NO_PATCHES (``all`` or comma-separated names)."""
    raw = [n.strip() for n in os.environ.get(DISABLE_ENV, "").split(",") if n.strip()]
    if "all" in raw:
        return list(BY_NAME)
    unknown = [n for n in raw if n not in BY_NAME]
    if unknown:
        raise ValueError(f"{DISABLE_ENV}: unknown patch name(s) {', '.join(unknown)}; the patches "
                         f"are {', '.join(BY_NAME)} (or 'all')")
    return raw


_logged = False
_pending = None      # (level, message) logged before any handler existed; see log_pending


def _torch_refuses_fairseq_checkpoints() -> bool:
    """Whether torch.load defaults to weights_only=True here (torch >= 2.6, not overridden by
    TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD): then fairseq checkpoints load only with the allowlist of
    the safe_checkpoint_loading patch."""
    import torch

    if os.environ.get("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "0") not in ("", "0"):
        return False
    try:
        major, minor = (int(part) for part in torch.__version__.split(".")[:2])
    except ValueError:
        return True
    return (major, minor) >= (2, 6)


SAFE_LOADING_OFF = (
    "safe_checkpoint_loading is switched off ({env}={value}) and torch {torch} loads checkpoints "
    "with weights_only=True, which refuses the configuration classes every fairseq checkpoint "
    "holds (argparse.Namespace, omegaconf containers): no fairseq checkpoint loads. Remove "
    "safe_checkpoint_loading (or 'all') from {env}, or, for files you trust only, set "
    "TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD=1")


def _safe_loading_off_message() -> str:
    import torch

    return SAFE_LOADING_OFF.format(env=DISABLE_ENV, value=os.environ.get(DISABLE_ENV, ""),
                                   torch=torch.__version__.split("+")[0])


def apply_all() -> List[Patch]:
    """Apply every patch not switched off; log the list once per process (at WARNING when some
    are switched off). Returns those applied."""
    global _logged, _pending
    off = disabled_names()
    applied = []
    for patch in PATCHES:
        if patch.name not in off:
            patch.apply()
            applied.append(patch)
    if not _logged:
        _logged = True
        names = ", ".join(f"{p.name} ({p.upstream})" for p in applied) or "nothing"
        skipped = f"; switched off by {DISABLE_ENV}: {', '.join(off)}" if off else ""
        message = (f"deep_pyramidion patches fairseq: {names}{skipped} (switch one off with "
                   f"{DISABLE_ENV}=name,...; see {__file__})")
        if "safe_checkpoint_loading" in off and _torch_refuses_fairseq_checkpoints():
            message += "; " + _safe_loading_off_message()
        level = logging.WARNING if off else logging.INFO
        # a command of the plugin configures logging after this import: with no handler yet, an
        # INFO line would be lost (a WARNING still reaches stderr through logging's last resort)
        if logger.hasHandlers() or level >= logging.WARNING:
            logger.log(level, "%s", message)
        else:
            _pending = (level, message)
    return applied


def log_pending() -> None:
    """Log the patches line now if it was emitted before any logging handler existed (the plugin's
    commands call this once they have configured logging)."""
    global _pending
    if _pending is not None:
        level, message = _pending
        _pending = None
        logger.log(level, "%s", message)


def is_command_line() -> bool:
    """Whether this process is a command (fairseq-train, pyramidion-summarize, a script), not
    ``python -c``, an interactive session or a notebook: there an expected failure is one line,
    while Python callers keep the exception and its traceback."""
    argv0 = sys.argv[0] if sys.argv else ""
    return argv0 not in ("", "-c") and not hasattr(sys, "ps1") and "ipykernel" not in sys.modules


def end_in_one_line(matches: Callable[[BaseException], bool],
                    message: Callable[[BaseException], str]) -> None:
    """In a command line, an uncaught exception for which ``matches`` is true ends the process with
    ``error: <message>`` (exit status 1) instead of a traceback; anything else goes to the
    previous hook. Used where no patch can be: the import failing on the switches themselves, and
    a checkpoint load failing because safe_checkpoint_loading is off."""
    if not is_command_line():
        return
    previous = sys.excepthook

    def hook(kind, value, traceback):
        if matches(value):
            sys.stderr.write("error: " + " ".join(message(value).split()) + "\n")
            return
        previous(kind, value, traceback)

    sys.excepthook = hook


def _weights_only_refusal(err: BaseException) -> bool:
    import pickle

    return isinstance(err, pickle.UnpicklingError) and "weights_only" in str(err)


def explain_switches(error: Optional[BaseException] = None) -> None:
    """Called by the adapter's import: ``error`` (a bad DEEP_PYRAMIDION_NO_PATCHES) ends a command
    in one line; with safe_checkpoint_loading switched off where torch refuses fairseq's
    checkpoints, so does the load that fails for that reason."""
    if error is not None:
        end_in_one_line(lambda err: err is error, str)
        return
    if "safe_checkpoint_loading" in disabled_names() and _torch_refuses_fairseq_checkpoints():
        end_in_one_line(_weights_only_refusal, lambda err: _safe_loading_off_message())


def revert_all() -> None:
    """Put fairseq's original functions back (in reverse order of application)."""
    for patch in reversed(PATCHES):
        patch.revert()
