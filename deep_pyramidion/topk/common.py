"""Pieces shared by every implementation of the successive-halving top-k operator.

Shape legend (used in every file of this package):
    B  batch size
    n  input length (tokens per document, padding included)
    k  output width
    d  number of halving rounds: the smallest d >= 0 with k * 2**d >= n
    M  members per output element: 2**d
    D  feature size

What lives here and why:
- ``check_inputs`` / ``check_scores``: the one place that validates arguments (shapes, k, base,
  NaN/inf scores), so every implementation gets the same errors and the check runs once per call.
- ``num_rounds``: how far n is padded (to k * 2**d).
- ``pair_weights``: the pair softmax. The reference and the vectorised path both call it, so the
  intermediate scores they sort on are computed by the same arithmetic (identical sort decisions).
"""
from __future__ import annotations

import math
import operator
from typing import Optional, Tuple

import torch


def num_rounds(n: int, k: int) -> int:
    """Smallest d >= 0 with k * 2**d >= n (d = 0 when k >= n: the identity case)."""
    d = 0
    while (k << d) < n:
        d += 1
    return d


def compute_dtype(dtype: torch.dtype) -> torch.dtype:
    """float64 stays float64 (gradcheck); everything else is computed in float32.

    bf16/fp16 scores would overflow in base**s and lose the pair weights to rounding.
    """
    return torch.float64 if dtype == torch.float64 else torch.float32


def pair_weights(
    s_left: torch.Tensor,
    s_right: torch.Tensor,
    m_left: torch.Tensor,
    m_right: torch.Tensor,
    base: float,
) -> Tuple[torch.Tensor, torch.Tensor]:
    """a = softmax([base**s_left, base**s_right]) elementwise, with padding handled exactly.

    s_*: scores (any shape, float32/float64; padded entries must already be 0), m_*: bool, True =
    padding. Returns (a0, a1) of the same shape:
      real/real      -> the softmax
      real/padding   -> exactly 1 on the real member, exactly 0 on the padding (logit -inf)
      padding/padding-> 0, 0 (the pair is padding itself)

    The softmax of two logits is sigmoid(p_left - p_right). The difference is computed as
    base**s_right * expm1((s_left - s_right) * ln(base)): the same number without cancellation, and
    exactly 0 when s_left == s_right, so equal scores get weights of exactly 0.5 in every
    implementation (ties then stay exact ties in the next round and the stable order decides).
    """
    diff = torch.pow(base, s_right) * torch.expm1((s_left - s_right) * math.log(base))
    # Padding has logit -inf: a difference of -inf (left is padding) or +inf (right is padding)
    # makes the sigmoids exactly 0 and 1. The left test comes second, so a pair of two paddings
    # gets (0, 1) here and its a1 is cleared below.
    diff = diff.masked_fill(m_right, float("inf")).masked_fill(m_left, float("-inf"))
    a0 = torch.sigmoid(diff)
    a1 = torch.sigmoid(-diff).masked_fill(m_left & m_right, 0.0)
    return a0, a1


def check_inputs(
    x: torch.Tensor,
    scores: torch.Tensor,
    k,
    mask: Optional[torch.Tensor],
    base: float,
) -> int:
    """Validate the public arguments; returns k as a Python int. Raises ValueError naming the argument."""
    if not isinstance(x, torch.Tensor) or x.dim() != 3:
        raise ValueError(f"x must be a (B, n, D) tensor, got {_describe(x)}")
    if not x.is_floating_point():
        raise ValueError(f"x must be a floating point tensor, got dtype {x.dtype}")
    if not isinstance(scores, torch.Tensor) or tuple(scores.shape) != tuple(x.shape[:2]):
        raise ValueError(
            f"scores must be a (B, n) tensor matching x {tuple(x.shape)}, got {_describe(scores)}"
        )
    if scores.device != x.device:
        raise ValueError(f"scores is on {scores.device} but x is on {x.device}")
    return check_scores(scores, k, mask, base)


def check_scores(scores: torch.Tensor, k, mask: Optional[torch.Tensor], base: float) -> int:
    """The checks of :func:`check_inputs` that do not involve x (phase 1 alone needs only these)."""
    if not isinstance(scores, torch.Tensor) or scores.dim() != 2:
        raise ValueError(f"scores must be a (B, n) tensor, got {_describe(scores)}")
    if not scores.is_floating_point():
        raise ValueError(f"scores must be a floating point tensor, got dtype {scores.dtype}")
    if mask is not None:
        if not isinstance(mask, torch.Tensor) or tuple(mask.shape) != tuple(scores.shape):
            raise ValueError(
                f"mask must be None or a (B, n) bool tensor matching scores {tuple(scores.shape)}, "
                f"got {_describe(mask)}"
            )
        if mask.dtype != torch.bool:
            raise ValueError(f"mask must have dtype torch.bool (True = padding), got {mask.dtype}")
        if mask.device != scores.device:
            raise ValueError(f"mask is on {mask.device} but x is on {scores.device}")
    if isinstance(k, bool):
        raise ValueError(f"k must be a positive integer, got {k!r}")
    try:
        k = operator.index(k)
    except TypeError:
        raise ValueError(f"k must be a positive integer, got {k!r}") from None
    if k <= 0:
        raise ValueError(f"k must be a positive integer, got {k}")
    if not (isinstance(base, (int, float)) and math.isfinite(base) and base > 0):
        raise ValueError(f"base must be a finite number > 0, got {base!r}")
    # One fused pass over the (B, n) scores; padded positions may hold anything.
    finite = torch.isfinite(scores)
    if mask is not None:
        finite = finite | mask
    if not bool(finite.all()):
        raise ValueError(
            "scores contain NaN or inf at non-padded positions; "
            "successive_halving_topk needs finite scores (check the scorer for overflow)"
        )
    return k


def _describe(t) -> str:
    if isinstance(t, torch.Tensor):
        return f"tensor of shape {tuple(t.shape)} and dtype {t.dtype}"
    return type(t).__name__
