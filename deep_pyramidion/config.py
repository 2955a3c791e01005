"""Every option of the pyramidion encoder in one place: name, default, fairseq flag, help, checks.

:class:`PyramidionConfig` is the single source of the defaults (the architectures below only
override some of them) and :meth:`PyramidionConfig.validate` is the single place that checks
values and resolves the released code's legacy flags, with messages that name the fairseq flag;
a model build validates once (fairseq_plugin/model.py: ``PyramidionModel.build_model``, with the
run's ``--criterion``). The core modules (attention patterns, poolers) are built from a validated
config; the fairseq adapter only translates between this object and fairseq's argparse namespace
(:meth:`from_namespace`, :meth:`write_to`, :meth:`add_args`); a command of its own takes a
config option's flag from here too (:meth:`add_flag`).

The names of the attention patterns and of the poolers are not listed here: the registries are the
one list (``@register_attention`` in modules/attention.py and modules/memory.py,
``@register_pooler`` in modules/poolers/), and a pooler's class declares its traits
(``needs_usage``, ``trainable``, ``has_scorer``). ENCODER_ATTENTIONS, POOLINGS, USAGE_POOLINGS,
TRAINABLE_POOLINGS and SCORER_POOLINGS are read from them on first use, so importing this module
still imports neither torch nor fairseq (the commands' ``--help`` stays quick).

    config = PyramidionConfig(encoder_layers=6, enc_layers_and_token_width="{0: 2048, 1: 512}")
    config = config.validate()          # raises ValueError naming the flag; returns resolved copy
    config.schedule                     # {0: 2048, 1: 512}
"""
import dataclasses
import logging
import math
from dataclasses import dataclass, field, fields
from typing import Any, Callable, Dict, Optional, Tuple, Union

from deep_pyramidion.plumbing.errors import ConfigError
from deep_pyramidion.limits import MAX_SOURCE_POSITIONS, check_max_source_positions
from deep_pyramidion.schedule import FLAG as SCHEDULE_FLAG
from deep_pyramidion.schedule import inactive_pooling_layers, parse_pooling_schedule

logger = logging.getLogger(__name__)

NO_POOLING = "none"
LEGACY_NO_POOLING = "lambda"      # the released code's name for "none"
NO_COMPRESSION = "none"
SCORER_ARCHS = ("linear", "ffn")
TOPK_IMPLS = ("auto", "reference", "torch", "triton")
# --use-sparse-attn of the released code -> (--encoder-attention, --encoder-pooling or None = any)
LEGACY_SPARSE_ATTN = {
    "pooler": ("blockwise", None),
    "only_blockwise": ("blockwise", NO_POOLING),
    "pooler_no_block": ("full", None),
}
# fairseq criteria (fairseq_plugin/criterion.py) that add a loss term the model computes in
# training only with some options: validate(criterion=...) checks those options when the model is
# built, instead of the first training step finding the term missing
RECONSTRUCTION_CRITERION = "label_smoothed_cross_entropy_with_reconstruction"
SELECTION_CRITERION = "label_smoothed_cross_entropy_with_selection"


# ------------------------------------------------------------------ names, from the registries
def _registries():
    """(attention patterns, poolers), imported on first use: the registries import torch, and
    this module must not (the commands import it to build their parsers)."""
    from deep_pyramidion.modules import ATTENTION_PATTERNS, POOLERS

    return ATTENTION_PATTERNS, POOLERS


def attention_names() -> Tuple[str, ...]:
    """Every registered attention pattern, in registration order (the default first)."""
    return tuple(_registries()[0])


def pooler_names(trait: Optional[str] = None) -> Tuple[str, ...]:
    """Every registered pooler in registration order; with ``trait`` (``needs_usage``,
    ``trainable``, ``has_scorer``: class attributes of modules/poolers/registry.py's Pooler) only
    those whose class declares it."""
    return tuple(name for name, cls in _registries()[1].items()
                 if trait is None or getattr(cls, trait))


_DERIVED_NAMES = {
    "ENCODER_ATTENTIONS": attention_names,
    "POOLINGS": pooler_names,
    # poolers that rank tokens by the attention the layer before them gave out
    "USAGE_POOLINGS": lambda: pooler_names("needs_usage"),
    # poolers whose parameters learn (the reconstruction loss of a compressed memory needs one)
    "TRAINABLE_POOLINGS": lambda: pooler_names("trainable"),
    # poolers that rank tokens with a learned scorer (what --selection-loss teaches)
    "SCORER_POOLINGS": lambda: pooler_names("has_scorer"),
}


def __getattr__(name: str):
    # the lists of names are read from the registries when asked for (PEP 562), not at import
    if name in _DERIVED_NAMES:
        return _DERIVED_NAMES[name]()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


_Text = Union[str, Callable[[], str]]


def _option(default, flag: str, help: _Text, metavar: Optional[str] = None,
            choices: Union[None, Tuple, Callable[[], Tuple]] = None, type=None,
            owner: str = "pyramidion"):
    """A config field that knows its flag. ``help`` and ``choices`` may be functions, called when
    a parser is built (the names of the registries). ``owner="fairseq"``: a fairseq transformer
    option the pyramidion's checks depend on (fairseq defines and fills it; not added here)."""
    return field(default=default, metadata=dict(flag=flag, help=help, metavar=metavar,
                                                choices=choices, type=type, owner=owner))


@dataclass(frozen=True)
class PyramidionConfig:
    """The pyramidion's options (see the README's "Model flags" for what each one does)."""

    # --- encoder self-attention pattern (modules/attention.py, modules/memory.py)
    encoder_attention: Optional[str] = _option(
        None, "--encoder-attention", lambda: "self-attention pattern of the encoder: "
        + ", ".join(attention_names()) + " (default: blockwise, or what --use-sparse-attn says)",
        choices=attention_names)
    chunk_size: int = _option(512, "--chunk-size", "tokens per chunk of blockwise attention",
                              metavar="N", type=int)
    attention_stride: int = _option(
        0, "--attention-stride", "strided/fixed: block length l; 0 = ceil(sqrt(length)) at "
        "each layer", metavar="L", type=int)
    fixed_summary_cells: int = _option(4, "--fixed-summary-cells",
                                       "fixed: summary cells per block", metavar="S", type=int)
    memory_compression: str = _option(
        NO_COMPRESSION, "--memory-compression", lambda: "blockwise-memory: also attend to the "
        "earlier chunks, each compressed by this pooler (" + ", ".join(pooler_names())
        + "); none = off",
        metavar="NAME", type=str)
    memory_compression_rate: int = _option(
        4, "--memory-compression-rate", "blockwise-memory: a chunk of c tokens is compressed to "
        "ceil(c/R) slots", metavar="R", type=int)
    compressed_memory_chunks: int = _option(
        0, "--compressed-memory-chunks", "blockwise-memory: compressed memory holds the M most "
        "recent chunks before the previous one; 0 = all", metavar="M", type=int)
    compression_taps: int = _option(
        4, "--compression-taps", "conv / dilated-conv pooling: learned taps, resampled to the r "
        "tokens of a window (conv) or one per window over K windows (dilated-conv)",
        metavar="K", type=int)
    # --- pooling between layers (modules/poolers/)
    encoder_pooling: Optional[str] = _option(
        None, "--encoder-pooling", lambda: "pooling between encoder layers: "
        + ", ".join(pooler_names()) + ", none ('lambda' is the released code's name for none) (default: topk, or what "
        "--use-sparse-attn says)", metavar="NAME", type=str)
    encoder_pooling_arch: str = _option("linear", "--encoder-pooling-arch",
                                        "token scorer of topk / hard-topk: linear (D -> 1) or "
                                        "ffn (D -> D -> 1)", choices=SCORER_ARCHS)
    # The released code's names stay the fields' (and so the flags' and the checkpoints' argparse
    # dests, which old checkpoints are loaded by); schedule_text, keep_document_order and
    # pair_best_with_worst below say what they do.
    enc_layers_and_token_width: str = _option(
        "{0: 2048, 1: 512}", SCHEDULE_FLAG, 'pooling schedule, e.g. "{0: 2048, 1: 512}": after '
        "layer 0 keep at most 2048 tokens, after layer 1 at most 512", metavar="DICT", type=str)
    sort_back: int = _option(1, "--sort-back", "1: pooled tokens keep document order",
                             choices=(0, 1), type=int)
    flip_right: int = _option(1, "--flip-right", "1: pair the best-scored token with the worst "
                              "in each halving round", choices=(0, 1), type=int)
    topk_softmax_base: float = _option(20.0, "--topk-softmax-base",
                                       "pair weights are softmax(B**s_left, B**s_right)",
                                       metavar="B", type=float)
    topk_straight_through: int = _option(
        0, "--topk-straight-through", "1: the forward pass keeps each output's leader (the token "
        "that won all its pairings) alone, the backward pass takes the gradient of the paper's "
        "soft pair weights (a straight-through estimator); 0: the paper's soft mix",
        choices=(0, 1), type=int)
    topk_normalize_scores: int = _option(
        0, "--topk-normalize-scores", "1: the top-k scorer's logits are standardised per "
        "document (mean 0, spread 1) before the sigmoid, so the scores never saturate; 0: the "
        "paper's sigmoid(logit)", choices=(0, 1), type=int)
    topk_base_warmup: int = _option(
        0, "--topk-base-warmup", "N > 0: during the first N training updates the pair weights' "
        "base grows geometrically from 1 (every pair an even mix) to --topk-softmax-base, so "
        "every token's score gets gradient while the decoder learns to read the kept tokens; "
        "evaluation and inference always use --topk-softmax-base; 0: the paper's fixed base",
        metavar="N", type=int)
    topk_scorer_gain: Optional[float] = _option(
        None, "--topk-scorer-gain", "initialise the token scorer's last layer with weights "
        "~ N(0, (G / sqrt(D))^2) and bias 0, so the logits spread by about G over unit-variance "
        "states (0: zero weights, every score 0.5 at the start); default: nn.Linear's own "
        "initialisation", metavar="G", type=float)
    selection_loss: int = _option(
        0, "--selection-loss", "1: in training, teach every token scorer (topk, hard-topk) which "
        "input tokens the target uses: binary cross-entropy of each scorer's logit against 'this "
        "token's id occurs in the target' (modules/poolers/selection.py); add it to the loss "
        "with --criterion label_smoothed_cross_entropy_with_selection", choices=(0, 1), type=int)
    topk_impl: str = _option("auto", "--topk-impl", "top-k kernel: auto (triton on CUDA, torch "
                             "elsewhere; env DEEP_PYRAMIDION_TOPK_IMPL overrides), reference, "
                             "torch, triton", choices=TOPK_IMPLS)
    use_sparse_attn: Optional[str] = _option(
        None, "--use-sparse-attn", "legacy: pooler = blockwise + pooling, only_blockwise = no "
        "pooling, pooler_no_block = full attention + pooling", choices=tuple(LEGACY_SPARSE_ATTN))
    # --- fairseq's own transformer options that the checks above depend on
    encoder_layers: int = _option(2, "--encoder-layers", "", owner="fairseq")
    encoder_layerdrop: float = _option(0.0, "--encoder-layerdrop", "", owner="fairseq")
    max_source_positions: int = _option(
        1024, "--max-source-positions", f"source tokens the encoder reads (at most "
        f"{MAX_SOURCE_POSITIONS})", metavar="N", type=int, owner="fairseq")

    # ------------------------------------------------------------------ derived values
    @property
    def schedule_text(self) -> str:
        """The pooling schedule as written, e.g. ``"{0: 2048, 1: 512}"``
        (``--enc-layers-and-token-width``, the released code's name)."""
        return self.enc_layers_and_token_width

    @property
    def keep_document_order(self) -> bool:
        """Pooled tokens keep document order (``--sort-back``, the released code's name)."""
        return bool(self.sort_back)

    @property
    def pair_best_with_worst(self) -> bool:
        """Each halving round of the top-k pairs the best-scored token with the worst
        (``--flip-right``, the released code's name)."""
        return bool(self.flip_right)

    @property
    def schedule(self) -> Dict[int, int]:
        """``{layer: width}`` of the layers that pool (empty without pooling)."""
        if self.pooling == NO_POOLING:
            return {}
        return parse_pooling_schedule(self.schedule_text, self.encoder_layers)

    @property
    def pooling(self) -> str:
        """The pooler's name after resolving the legacy names (``lambda`` -> ``none``)."""
        name = self.encoder_pooling or "topk"
        return NO_POOLING if name == LEGACY_NO_POOLING else name

    @property
    def attention(self) -> str:
        return self.encoder_attention or "blockwise"

    def computes_loss_for(self, criterion: Optional[str]) -> bool:
        """Whether the model computes, in training, the term ``--criterion`` adds to the loss
        (True for a criterion that adds none)."""
        if criterion == RECONSTRUCTION_CRITERION:
            return self.attention == "blockwise-memory" and \
                self.memory_compression in pooler_names("trainable")
        if criterion == SELECTION_CRITERION:
            return bool(self.selection_loss) and self.pooling in pooler_names("has_scorer")
        return True

    # ------------------------------------------------------------------ fairseq namespace
    @classmethod
    def own_fields(cls):
        return [f for f in fields(cls) if f.metadata["owner"] == "pyramidion"]

    @classmethod
    def from_namespace(cls, args: Any) -> "PyramidionConfig":
        """Read every field from an argparse namespace (or any object); missing ones keep the
        default."""
        values = {f.name: getattr(args, f.name) for f in fields(cls) if hasattr(args, f.name)}
        return cls(**values)

    def write_to(self, args: Any) -> None:
        """Put the (resolved) options back on a namespace: the checkpoint then records what ran."""
        for f in self.own_fields():
            setattr(args, f.name, getattr(self, f.name))

    @classmethod
    def fill_defaults(cls, args: Any, **overrides) -> None:
        """An architecture function's job: set every option the user did not give, to the
        architecture's ``overrides`` or else the default here."""
        for f in cls.own_fields():
            if not hasattr(args, f.name):
                setattr(args, f.name, overrides.get(f.name, f.default))

    @classmethod
    def add_args(cls, parser) -> None:
        """Add the pyramidion's flags to a fairseq model-args group. No argparse defaults:
        fairseq's model group suppresses them and the architecture fills them in
        (:meth:`fill_defaults`), so an architecture can change a default."""
        for f in cls.own_fields():
            kwargs = _argparse_options(f)
            if "(default:" not in kwargs["help"]:
                kwargs["help"] += f" (default: {_shown(f.default)})"
            parser.add_argument(f.metadata["flag"], **kwargs)

    @classmethod
    def add_flag(cls, parser, name: str, note: str = "", **kwargs) -> None:
        """Add field ``name``'s flag, as its metadata declares it (flag, help, type, metavar,
        choices), to a command's own parser: a command that takes a config option (the
        converter's schedule and positions) does not declare it again. ``note``, what the option
        means to that command, is appended to the help; ``kwargs`` go to ``add_argument``."""
        f = next(f for f in fields(cls) if f.name == name)
        options = _argparse_options(f)
        if note:
            options["help"] += "; " + note
        parser.add_argument(f.metadata["flag"], **{**options, **kwargs})

    # ------------------------------------------------------------------ checks
    def validate(self, criterion: Optional[str] = None,
                 log_warnings: bool = True) -> "PyramidionConfig":
        """Check every value and resolve the legacy flags; returns the resolved config.

        Raises ConfigError (a ValueError) naming the flag. Conflicting flags are an error when
        one would silently undo the other (``--use-sparse-attn only_blockwise`` with
        ``--encoder-pooling topk``), a warning saying which one wins otherwise (a schedule with
        ``--encoder-pooling none`` is not applied). Idempotent: validating a resolved config
        returns an equal config.

        ``criterion``: the run's ``--criterion``; one that adds a term the model would not compute
        (the reconstruction criterion without a trainable compressed memory, the selection
        criterion without ``--selection-loss 1``) is an error here, before anything is built.
        Called once per model build, so each warning is logged once; ``log_warnings=False`` for a
        caller that only reads the resolved values of a config a model build validates again.
        """
        attention, pooling = self.encoder_attention, self.encoder_pooling
        if self.use_sparse_attn is not None:
            if self.use_sparse_attn not in LEGACY_SPARSE_ATTN:
                raise ConfigError(f"--use-sparse-attn: unknown value {self.use_sparse_attn!r}; "
                                 f"choose from {list(LEGACY_SPARSE_ATTN)}")
            legacy_attention, legacy_pooling = LEGACY_SPARSE_ATTN[self.use_sparse_attn]
            if attention is not None and attention != legacy_attention:
                raise ConfigError(
                    f"--use-sparse-attn {self.use_sparse_attn} means --encoder-attention "
                    f"{legacy_attention}, but --encoder-attention {attention} was given; drop one "
                    "of them")
            attention = legacy_attention
            if legacy_pooling is not None:
                if pooling not in (None, legacy_pooling, LEGACY_NO_POOLING):
                    raise ConfigError(
                        f"--use-sparse-attn {self.use_sparse_attn} means --encoder-pooling "
                        f"{legacy_pooling}, but --encoder-pooling {pooling} was given; drop one "
                        "of them")
                pooling = legacy_pooling
        resolved = dataclasses.replace(self, encoder_attention=attention or "blockwise",
                                       encoder_pooling=pooling or "topk")
        warnings = []
        resolved._check_values(warnings)
        if not resolved.computes_loss_for(criterion):
            raise ConfigError(missing_loss_message(criterion))
        if resolved.pooling == NO_POOLING and parse_pooling_schedule(
                resolved.schedule_text, resolved.encoder_layers):
            warnings.append((
                "--encoder-pooling none (or --use-sparse-attn only_blockwise): every layer "
                "keeps all its tokens, so %s %s is not applied (give it '{}' to say so)",
                SCHEDULE_FLAG, resolved.schedule_text))
        if resolved.pooling != NO_POOLING:
            for layer, width, length in inactive_pooling_layers(resolved.schedule,
                                                                 resolved.max_source_positions):
                warnings.append((
                    "%s: layer %d keeps %d tokens, but at --max-source-positions %d it never "
                    "receives more than %d, so it selects nothing in training and its scorer "
                    "stays untrained; on longer inputs at inference it would select tokens with "
                    "untrained scores", SCHEDULE_FLAG, layer, width, resolved.max_source_positions,
                    length))
        if log_warnings:
            for message, *args in warnings:
                logger.warning(message, *args)
        return resolved

    def _check_values(self, warnings: list) -> None:
        attentions, poolings = attention_names(), pooler_names()
        if self.encoder_attention not in attentions:
            raise ConfigError(f"--encoder-attention: unknown value {self.encoder_attention!r}; "
                             f"choose from {list(attentions)}")
        if self.pooling != NO_POOLING and self.pooling not in poolings:
            raise ConfigError(
                f"--encoder-pooling: unknown value {self.encoder_pooling!r}; choose from "
                f"{sorted(set(poolings) | {NO_POOLING, LEGACY_NO_POOLING})}")
        _check_int(self.chunk_size, "--chunk-size", 1)
        _check_int(self.attention_stride, "--attention-stride", 0)
        _check_int(self.fixed_summary_cells, "--fixed-summary-cells", 1)
        _check_int(self.memory_compression_rate, "--memory-compression-rate", 1)
        _check_int(self.compressed_memory_chunks, "--compressed-memory-chunks", 0)
        _check_int(self.compression_taps, "--compression-taps", 1)
        _check_int(self.encoder_layers, "--encoder-layers", 1)
        # fairseq-train's own flag: a typo'd 100000000 would allocate the position table first
        check_source_positions(self.max_source_positions)
        for flag, value in (("--sort-back", self.sort_back), ("--flip-right", self.flip_right),
                            ("--topk-straight-through", self.topk_straight_through),
                            ("--topk-normalize-scores", self.topk_normalize_scores),
                            ("--selection-loss", self.selection_loss)):
            if value not in (0, 1) or isinstance(value, bool) or not isinstance(value, int):
                raise ConfigError(f"{flag} must be 0 or 1, got {value!r}")
        if self.encoder_pooling_arch not in SCORER_ARCHS:
            raise ConfigError(f"--encoder-pooling-arch: expected one of {list(SCORER_ARCHS)}, "
                             f"got {self.encoder_pooling_arch!r}")
        if self.topk_impl not in TOPK_IMPLS:
            raise ConfigError(f"--topk-impl: unknown value {self.topk_impl!r}; choose from "
                             f"{list(TOPK_IMPLS)}")
        if not (is_finite_number(self.topk_softmax_base) and self.topk_softmax_base > 1.0):
            raise ConfigError(f"--topk-softmax-base must be a finite number > 1, got "
                             f"{self.topk_softmax_base!r}")
        _check_int(self.topk_base_warmup, "--topk-base-warmup", 0)
        if self.topk_scorer_gain is not None and not (
                is_finite_number(self.topk_scorer_gain) and self.topk_scorer_gain >= 0):
            raise ConfigError(f"--topk-scorer-gain must be a finite number >= 0, got "
                             f"{self.topk_scorer_gain!r}")
        if self.encoder_attention == "fixed" and self.attention_stride > 0 \
                and self.fixed_summary_cells > self.attention_stride:
            raise ConfigError(
                f"--fixed-summary-cells {self.fixed_summary_cells} exceeds --attention-stride "
                f"{self.attention_stride}: a block cannot hold more summary cells than tokens")
        name = self.memory_compression
        if name != NO_COMPRESSION:
            if name not in poolings:
                raise ConfigError(f"--memory-compression: unknown value {name!r}; choose from "
                                 f"{sorted(set(poolings) | {NO_COMPRESSION})}")
            if self.encoder_attention != "blockwise-memory":
                raise ConfigError(f"--memory-compression {name} needs --encoder-attention "
                                 f"blockwise-memory (got {self.encoder_attention})")
        if self.encoder_attention in ("strided", "fixed") and self.encoder_layers < 2:
            warnings.append(("--encoder-attention %s alternates two patterns over layers; with "
                             "--encoder-layers %d only the local one runs", self.encoder_attention,
                             self.encoder_layers))
        if self.pooling in pooler_names("needs_usage") and self.encoder_layerdrop > 0:
            raise ConfigError(f"--encoder-pooling {self.pooling} ranks tokens by the attention of "
                             f"the layer before it, which --encoder-layerdrop "
                             f"{self.encoder_layerdrop} may skip; use --encoder-layerdrop 0")
        scorers = pooler_names("has_scorer")
        if self.selection_loss and self.pooling not in scorers:
            raise ConfigError(f"--selection-loss 1 teaches a token scorer, and --encoder-pooling "
                             f"{self.pooling} has none: use one of {list(scorers)}")
        self.schedule  # noqa: B018  (parsing is the check)


def missing_loss_message(criterion: str) -> str:
    """What ``--criterion`` needs of the model for the term it adds (see computes_loss_for)."""
    if criterion == RECONSTRUCTION_CRITERION:
        return (f"--criterion {criterion} needs a model that computes the reconstruction loss: "
                "--encoder-attention blockwise-memory with a trainable --memory-compression "
                f"({', '.join(pooler_names('trainable'))})")
    return (f"--criterion {criterion} needs a model that computes the selection loss: "
            f"--selection-loss 1 with --encoder-pooling {' or '.join(pooler_names('has_scorer'))}")


def check_source_positions(value) -> None:
    """ConfigError naming --max-source-positions unless ``value`` is within the limit (limits.py):
    the position table is allocated from it when the model is built."""
    try:
        check_max_source_positions(value)
    except ValueError as err:
        raise ConfigError(str(err)) from None


def _argparse_options(f) -> Dict[str, Any]:
    """add_argument's keywords for field ``f``: help, and metavar / choices / type where set."""
    meta = f.metadata
    options = {"help": meta["help"]() if callable(meta["help"]) else meta["help"]}
    for key in ("metavar", "choices", "type"):
        if meta[key] is not None:
            value = meta[key]
            options[key] = value() if key == "choices" and callable(value) else value
    return options


def _shown(value) -> str:
    return "none" if value is None else str(value)


def _check_int(value, flag: str, minimum: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise ConfigError(f"{flag} must be an integer >= {minimum}, got {value!r}")


def is_finite_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
