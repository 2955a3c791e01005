"""Poolers: shrink the sequence between encoder layers.

Shape legend:
    B   batch          n   input length        D   channels
    k   output width, min(width, n): a batch narrower than the schedule's width is not padded up

Every pooler is built as ``cls(embed_dim, width, args)`` and called as
``pooler(x, mask) -> (y, y_mask)`` with x (B, n, D), mask (B, n) bool (True = padding),
y (B, k, D), y_mask (B, k). One registry, so ``--encoder-pooling NAME`` picks any of them.
"""
from typing import Callable, Dict, Tuple

import torch
import torch.nn as nn
from torch import Tensor

from deep_pyramidion.topk import successive_halving_topk

POOLERS: Dict[str, Callable[..., nn.Module]] = {}

# the released code squashed scores the same way; the offset keeps base**s away from base**0 ties
SCORE_EPS = 1e-5


def register_pooler(name: str):
    def wrap(cls):
        if name in POOLERS:
            raise ValueError(f"pooler {name!r} registered twice")
        POOLERS[name] = cls
        return cls

    return wrap


def build_pooler(name: str, embed_dim: int, width: int, args) -> nn.Module:
    if name not in POOLERS:
        raise ValueError(f"--encoder-pooling: unknown pooler {name!r}; choose from {sorted(POOLERS)}")
    return POOLERS[name](embed_dim, width, args)


class TokenScorer(nn.Module):
    """One logit per token: ``--encoder-pooling-arch linear`` (D -> 1) or ``ffn`` (D -> D -> 1)."""

    def __init__(self, embed_dim: int, arch: str = "linear"):
        super().__init__()
        if arch == "linear":
            self.net = nn.Linear(embed_dim, 1)
        elif arch == "ffn":
            self.net = nn.Sequential(nn.Linear(embed_dim, embed_dim), nn.GELU(), nn.Linear(embed_dim, 1))
        else:
            raise ValueError(f"--encoder-pooling-arch: expected 'linear' or 'ffn', got {arch!r}")

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x).squeeze(-1)  # (B, n, D) -> (B, n)


def keep_in_graph(x: Tensor, unused: Tensor) -> Tensor:
    """Return x, with a zero-valued dependency on ``unused``.

    When a batch is no wider than the pooler's width nothing is selected and the scorer would get
    no gradient; DDP (pytorch_ddp without --find-unused-parameters) then stops with "parameters that
    were not used". A zero-weighted term keeps every parameter in the graph at negligible cost.
    """
    return x + unused.sum().to(x.dtype) * 0.0


@register_pooler("topk")
class SuccessiveHalvingPooler(nn.Module):
    """The paper's trainable top-k: score tokens, keep ``width`` by successive halving."""

    def __init__(self, embed_dim: int, width: int, args):
        super().__init__()
        self.width = width
        self.scorer = TokenScorer(embed_dim, getattr(args, "encoder_pooling_arch", "linear"))
        self.base = float(getattr(args, "topk_softmax_base", 20.0))
        self.flip_right = bool(getattr(args, "flip_right", 1))
        self.sort_back = bool(getattr(args, "sort_back", 1))
        self.impl = getattr(args, "topk_impl", "auto")

    def score(self, x: Tensor) -> Tensor:
        # fp32 scores: base ** s must not overflow under --fp16/--bf16
        return torch.sigmoid(self.scorer(x).float()) + SCORE_EPS  # (B, n)

    def forward(self, x: Tensor, mask: Tensor) -> Tuple[Tensor, Tensor]:
        scores = self.score(x)
        k = min(self.width, x.size(1))
        if k >= x.size(1):
            return keep_in_graph(x, scores), mask
        y, _, y_mask = successive_halving_topk(
            x, scores, k, mask=mask, base=self.base, flip_right=self.flip_right,
            sort_back=self.sort_back, impl=self.impl,
        )
        return y, y_mask


@register_pooler("hard-topk")
class HardTopkPooler(nn.Module):
    """Plain top-k: keep the ``width`` best-scored tokens, in document order (the paper's ablation).

    The selection itself has no gradient; the scorer learns through a straight-through gate: every
    kept token is multiplied by ``1 + s - stop_gradient(s)``, which is 1 in the forward pass and
    passes d loss / d s = <d loss / d y, x> back to its score s.
    """

    def __init__(self, embed_dim: int, width: int, args):
        super().__init__()
        self.width = width
        self.scorer = TokenScorer(embed_dim, getattr(args, "encoder_pooling_arch", "linear"))

    def forward(self, x: Tensor, mask: Tensor) -> Tuple[Tensor, Tensor]:
        B, n, D = x.shape
        if mask is None:
            mask = torch.zeros(B, n, dtype=torch.bool, device=x.device)
        scores = torch.sigmoid(self.scorer(x).float())                     # (B, n)
        k = min(self.width, n)
        if k >= n:
            return keep_in_graph(x, scores), mask
        # rank on a copy where padding is -inf, but gate with the finite score (-inf - -inf = NaN)
        idx = scores.masked_fill(mask, float("-inf")).topk(k, dim=1).indices.sort(dim=1).values
        kept = scores.gather(1, idx)                                       # (B, k)
        gate = (1.0 + kept - kept.detach()).to(x.dtype)
        y = x.gather(1, idx.unsqueeze(-1).expand(B, k, D)) * gate.unsqueeze(-1)  # (B, k, D)
        y_mask = mask.gather(1, idx)                                       # (B, k)
        return y.masked_fill(y_mask.unsqueeze(-1), 0.0), y_mask
