"""The pooling schedule: which encoder layers pool, and to how many tokens.

``--enc-layers-and-token-width "{0: 2048, 1: 512}"`` means: after layer 0 keep at most 2048 tokens,
after layer 1 at most 512; unlisted layers keep the width they got. The released code ran ``eval`` on
this string; we parse it as a Python literal and never execute anything.
"""
import ast
import logging
from typing import Dict, Optional

from deep_pyramidion.plumbing.errors import ConfigError

logger = logging.getLogger(__name__)

FLAG = "--enc-layers-and-token-width"
# Longer strings are not a schedule anyone writes; refusing them early also bounds the parser's work.
_MAX_LEN = 10_000


def _is_int(value) -> bool:
    # bool is a subclass of int, but {0: True} is a typo, not a width
    return isinstance(value, int) and not isinstance(value, bool)


def parse_pooling_schedule(text: Optional[str], num_layers: int, flag: str = FLAG) -> Dict[int, int]:
    """Parse and validate a schedule; return ``{layer: width}`` ordered by layer.

    Accepts a dict literal ``{0: 2048, 1: 512}`` or a list of pairs ``[(0, 2048), (1, 512)]``;
    ``""``, ``"{}"`` or ``None`` mean no pooling. Raises ``ConfigError`` (a ``ValueError``)
    naming ``flag`` otherwise, also for a layer listed twice (a dict literal would silently keep
    the last value).
    """
    if text is None:
        return {}
    if isinstance(text, dict):
        parsed = text
    else:
        if not isinstance(text, str):
            raise ConfigError(f"{flag}: expected a string like '{{0: 2048, 1: 512}}', got {type(text).__name__}")
        if len(text) > _MAX_LEN:
            raise ConfigError(f"{flag}: value is {len(text)} characters long; expected a short dict literal")
        if not text.strip():
            return {}
        try:
            tree = ast.parse(text.strip(), mode="eval")
            if isinstance(tree.body, ast.Dict):
                _refuse_repeated_keys(tree.body, flag)
            parsed = ast.literal_eval(tree)
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError) as err:
            if isinstance(err, ConfigError):
                raise
            raise ConfigError(
                f"{flag}: cannot parse {text!r} as a literal like '{{0: 2048, 1: 512}}' ({type(err).__name__})"
            ) from None
    if isinstance(parsed, (list, tuple)):
        if not all(isinstance(p, (list, tuple)) and len(p) == 2 for p in parsed):
            raise ConfigError(f"{flag}: a list must hold (layer, width) pairs, got {text!r}")
        pairs = list(parsed)
    elif isinstance(parsed, dict):
        pairs = list(parsed.items())
    else:
        raise ConfigError(f"{flag}: expected a dict {{layer: width}}, got {type(parsed).__name__} from {text!r}")

    schedule: Dict[int, int] = {}
    for layer, width in pairs:
        if not _is_int(layer) or not _is_int(width):
            raise ConfigError(f"{flag}: layers and widths must be integers, got {layer!r}: {width!r}")
        if not 0 <= layer < num_layers:
            raise ConfigError(
                f"{flag}: layer {layer} is outside the encoder's layers [0, {num_layers}) "
                f"(--encoder-layers {num_layers})"
            )
        if width <= 0:
            raise ConfigError(f"{flag}: layer {layer} has width {width}; widths must be positive")
        if layer in schedule:
            raise ConfigError(f"{flag}: layer {layer} is listed twice")
        schedule[layer] = width

    ordered = dict(sorted(schedule.items()))
    previous = None
    for layer, width in ordered.items():
        if previous is not None and width > previous[1]:
            raise ConfigError(
                f"{flag}: width {width} after layer {layer} is larger than {previous[1]} after layer "
                f"{previous[0]}; widths cannot grow (a pooled-away token cannot come back)"
            )
        previous = (layer, width)
    return ordered


def _refuse_repeated_keys(node: ast.Dict, flag: str) -> None:
    seen = set()
    for key in node.keys:
        if isinstance(key, ast.Constant) and key.value in seen:
            raise ConfigError(f"{flag}: layer {key.value!r} is listed twice")
        if isinstance(key, ast.Constant):
            seen.add(key.value)


def inactive_pooling_layers(schedule: Dict[int, int], max_source_positions: int):
    """Layers whose pooler never reduces anything for inputs of at most ``max_source_positions``.

    Such a layer's scorer gets no gradient in training, yet it selects tokens on longer inputs at
    inference (the train-short / infer-long setting), so the caller warns about it.
    """
    inactive = []
    length = max_source_positions
    for layer, width in schedule.items():
        if width >= length:
            inactive.append((layer, width, length))
        else:
            length = width
    return inactive
