"""Top-k poolers: a learned scorer rates every token, then the best ones are kept.

Shape legend (batch-first): B batch, n input length, D channels, k = min(width, n) kept,
M = 2**ceil(log2(n/k)) inputs per output of the successive-halving top-k.

    topk       the paper's trainable successive-halving top-k (deep_pyramidion.topk): k outputs,
               each a softmax(B**s)-weighted mix of M inputs; differentiable w.r.t. the scores
    hard-topk  plain top-k of the same scores, document order kept; the scorer learns through a
               straight-through gate (the paper's ablation)
"""
from typing import Optional

import torch
import torch.nn as nn
from torch import Tensor

from deep_pyramidion.modules.poolers.registry import (
    Assignment, Pooled, Pooler, register_pooler, selection_assignment,
)
from deep_pyramidion.topk import successive_halving_assignment, successive_halving_topk, weighted_sum

# the released code squashed scores the same way; the offset keeps base**s away from base**0 ties
SCORE_EPS = 1e-5


class TokenScorer(nn.Module):
    """One logit per token: ``--encoder-pooling-arch linear`` (D -> 1) or ``ffn`` (D -> D -> 1)."""

    def __init__(self, embed_dim: int, arch: str = "linear", gain: Optional[float] = None):
        super().__init__()
        if arch == "linear":
            self.net = nn.Linear(embed_dim, 1)
        elif arch == "ffn":
            self.net = nn.Sequential(nn.Linear(embed_dim, embed_dim), nn.GELU(), nn.Linear(embed_dim, 1))
        else:
            raise ValueError(f"--encoder-pooling-arch: expected 'linear' or 'ffn', got {arch!r}")
        if gain is not None:
            self.reset_gain(gain)

    def reset_gain(self, gain: float, generator: Optional[torch.Generator] = None) -> None:
        """Last layer's weights ~ N(0, (gain / sqrt(D))^2), bias 0: over unit-variance states the
        logits spread by about ``gain`` (0: every token scores the same)."""
        last = self.net if isinstance(self.net, nn.Linear) else self.net[-1]
        with torch.no_grad():
            last.weight.normal_(0.0, gain / last.in_features ** 0.5, generator=generator)
            last.bias.zero_()

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x).squeeze(-1)  # (B, n, D) -> (B, n)


@register_pooler("topk")
class SuccessiveHalvingPooler(Pooler):
    """The paper's trainable top-k: score tokens, keep ``width`` by successive halving."""

    trainable = True
    has_scorer = True

    def __init__(self, embed_dim: int, width: int, scorer: str = "linear", base: float = 20.0,
                 flip_right: bool = True, sort_back: bool = True, impl: str = "auto",
                 straight_through: bool = False, normalize_scores: bool = False,
                 base_warmup: int = 0, scorer_gain: Optional[float] = None):
        super().__init__(width)
        self.scorer = TokenScorer(embed_dim, scorer, scorer_gain)
        self.base = float(base)
        self.base_warmup = int(base_warmup)
        # training steps seen: fairseq's trainer sets it before every update (set_num_updates);
        # elsewhere (transformers' Trainer) each training forward pass counts one
        self.num_updates = 0
        self.flip_right = bool(flip_right)
        self.sort_back = bool(sort_back)
        self.impl = impl
        self.straight_through = bool(straight_through)
        self.normalize_scores = bool(normalize_scores)

    @classmethod
    def from_config(cls, embed_dim, width, config):
        return cls(embed_dim, width, config.encoder_pooling_arch, config.topk_softmax_base,
                   config.pair_best_with_worst, config.keep_document_order, config.topk_impl,
                   config.topk_straight_through, config.topk_normalize_scores,
                   config.topk_base_warmup, config.topk_scorer_gain)

    def set_num_updates(self, num_updates: int) -> None:
        self.num_updates = num_updates

    def current_base(self) -> float:
        """The pair weights' base: ``base`` itself, except while training during the first
        ``base_warmup`` updates, where it grows geometrically from 1 (base ** 0: every pair an
        even mix, whatever the scores) to ``base``. Why: with the full base from the start, the
        best-with-worst pairings saturate at once (a0 * a1 ~ 0), and a token paired with a
        better one gets no gradient long before the decoder has learned what to read."""
        if not self.training or self.num_updates >= self.base_warmup:
            return self.base
        return self.base ** (self.num_updates / self.base_warmup)

    def score(self, x: Tensor, mask: Optional[Tensor] = None) -> Tensor:
        # fp32 scores: base ** s must not overflow under --fp16/--bf16
        logits = self.scorer(x).float()                                   # (B, n)
        if self.normalize_scores:
            # standardised per document: the scores straddle 0.5 with a fixed spread whatever the
            # scorer's weights grow to, so they never saturate at 0 or 1 (where the sigmoid and
            # the pair weights stop passing gradient); the scorer decides the ranking and the
            # relative gaps only
            real = torch.ones_like(logits) if mask is None else (~mask).to(logits.dtype)
            count = real.sum(1, keepdim=True).clamp(min=1)
            mean = (logits * real).sum(1, keepdim=True) / count
            var = (((logits - mean) * real) ** 2).sum(1, keepdim=True) / count
            logits = (logits - mean) / (var + 1e-6).sqrt()
        return torch.sigmoid(logits) + SCORE_EPS  # (B, n)

    def forward(self, x, mask, usage=None, with_assignment=False):
        # score(x) keeps its one-argument form where the mask is not needed, for callers that
        # replace it (tests and analyses swap in other scorers)
        scores = self.score(x, mask) if self.normalize_scores else self.score(x)
        k = min(self.width, x.size(1))
        if k >= x.size(1):
            return self.pass_through(x, mask, with_assignment, dependency=scores)
        base = self.current_base()
        if self.training and self.base_warmup:
            self.num_updates += 1
        options = dict(base=base, flip_right=self.flip_right, sort_back=self.sort_back)
        if not with_assignment and not self.straight_through:
            y, _, y_mask = successive_halving_topk(x, scores, k, mask=mask, impl=self.impl, **options)
            return Pooled(y, y_mask)
        # the two phases separately, so that phase 1's member lists come back too
        index, weight, _, y_mask = successive_halving_assignment(scores, k, mask=mask, **options)
        if self.straight_through:
            weight = leaders_straight_through(weight)
        y = weighted_sum(x, index, weight, impl=self.impl)
        return Pooled(y, y_mask, Assignment(index, weight) if with_assignment else None)


def leaders_straight_through(weight: Tensor) -> Tensor:
    """(B, k, M) tournament weights -> weights equal to 1 on each output's leader (its largest
    weight: the member that won every pairing) and 0 elsewhere in the forward pass, whose
    gradient is that of the soft weights.

    Why: with the soft mix, every output blends its M members, and a token that should be kept
    reaches the decoder only as a fraction of an arbitrary blend until its score already wins,
    so the scorer gets little signal that keeping it pays. With the leaders alone the decoder
    reads the kept tokens as they are, while the soft weights still tell every member (winners
    and losers) how the loss would change if it weighed more.
    """
    live = weight.sum(-1, keepdim=True) > 0                          # (B, k, 1): not all padding
    hard = torch.zeros_like(weight).scatter_(-1, weight.argmax(-1, keepdim=True), 1.0)
    hard = hard * live
    return hard + (weight - weight.detach())


@register_pooler("hard-topk")
class HardTopkPooler(Pooler):
    """Plain top-k: keep the ``width`` best-scored tokens, in document order (the paper's ablation).

    The selection itself has no gradient; the scorer learns through a straight-through gate: every
    kept token is multiplied by ``1 + s - stop_gradient(s)``, which is 1 in the forward pass and
    passes d loss / d s = <d loss / d y, x> back to its score s.
    """

    trainable = True
    has_scorer = True

    def __init__(self, embed_dim: int, width: int, scorer: str = "linear",
                 scorer_gain: Optional[float] = None):
        super().__init__(width)
        self.scorer = TokenScorer(embed_dim, scorer, scorer_gain)

    @classmethod
    def from_config(cls, embed_dim, width, config):
        return cls(embed_dim, width, config.encoder_pooling_arch, config.topk_scorer_gain)

    def forward(self, x, mask, usage=None, with_assignment=False):
        B, n, D = x.shape
        scores = torch.sigmoid(self.scorer(x).float())                     # (B, n)
        k = min(self.width, n)
        if k >= n:
            return self.pass_through(x, mask, with_assignment, dependency=scores)
        # rank on a copy where padding is -inf, but gate with the finite score (-inf - -inf = NaN)
        idx = scores.masked_fill(mask, float("-inf")).topk(k, dim=1).indices.sort(dim=1).values
        kept = scores.gather(1, idx)                                       # (B, k)
        gate = (1.0 + kept - kept.detach()).to(x.dtype)
        y = x.gather(1, idx.unsqueeze(-1).expand(B, k, D)) * gate.unsqueeze(-1)  # (B, k, D)
        y_mask = mask.gather(1, idx)                                       # (B, k)
        assignment = selection_assignment(idx, y_mask) if with_assignment else None
        return Pooled(y.masked_fill(y_mask.unsqueeze(-1), 0.0), y_mask, assignment)


__all__ = ["SCORE_EPS", "HardTopkPooler", "SuccessiveHalvingPooler", "TokenScorer",
           "leaders_straight_through"]
