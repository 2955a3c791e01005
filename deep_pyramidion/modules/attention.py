"""Encoder self-attention patterns (``--encoder-attention``), computed by reshaping into blocks.

Shape legend (batch-first):
    T   length at this layer (it shrinks after pooling)      B   batch      C   channels
    c   chunk size, min(--chunk-size, T)                      N   blocks per row, ceil(T / block)
    l   block length of strided / fixed: --attention-stride, or ceil(sqrt(T)) when it is 0
        (the Sparse Transformer's l ~ sqrt(n), recomputed per layer as pooling shrinks T)
    s   summary cells per block (fixed): min(--fixed-summary-cells, l)
    S   keys per query

A(i) is the set of keys query i attends to. Every pattern folds blocks into the batch axis and
runs the layer's own attention on them; no pattern builds or masks a dense T x T score matrix
(the tests compare each with such a dense reference).

    full              A(i) = every position                                         O(T^2)
    blockwise         A(i) = {j : j // c == i // c}                                  O(T c)
    strided           Sparse Transformer, strided, bidirectional; interleaved layers:
                        even layers  A(i) = {j : j // l == i // l}   (row of the (N, l) grid)
                        odd layers   A(i) = {j : j %  l == i %  l}   (column of the grid)
                      two layers connect every pair of positions                     O(T sqrt T)
    fixed             Sparse Transformer, fixed, bidirectional; interleaved layers:
                        even layers  A(i) = {j : j // l == i // l}
                        odd layers   A(i) = summary cells of every block: its last s real
                                     tokens (j % l >= l - s for a full block)       O(T sqrt T s)
    blockwise-memory  Transformer-XL's segment recurrence + the Compressive Transformer's
                      compressed memory: modules/memory.py                           O(T c)

Interleaved layers, not head groups: the paper offers both ("one attention type per residual block,
interleaved" or heads of each type side by side). A layer's attention projects all heads against
one key set, so head groups with different keys would need a second attention implementation;
interleaving runs each layer's own attention unchanged on a reshaped input. An encoder needs >= 2
layers for the factorization to connect all positions.

The fixed pattern's summary cells are defined on real tokens (the last s real tokens of a block),
so a short or partly padded block still contributes summaries and every document has at least one
(its last real token): no query attends to nothing.

A new pattern: subclass :class:`AttentionPattern`, implement ``forward`` and ``from_config``, and
decorate it with ``@register_attention("name")`` in a module that ``deep_pyramidion.modules``
imports. The registry is the one list of names: ``--encoder-attention name`` accepts it from then
on (config.py reads ENCODER_ATTENTIONS from here).
"""
import math
from typing import Callable, Dict, Tuple

import torch
import torch.nn as nn
from torch import Tensor

from deep_pyramidion.modules.chunking import pad_to_blocks, run_blockwise
from deep_pyramidion.modules.layer import EncoderLayer, LayerOutput

ATTENTION_PATTERNS: Dict[str, Callable[..., "AttentionPattern"]] = {}


def register_attention(name: str):
    def wrap(cls):
        if name in ATTENTION_PATTERNS:
            raise ValueError(f"attention pattern {name!r} registered twice")
        ATTENTION_PATTERNS[name] = cls
        return cls

    return wrap


def build_attention_pattern(config, embed_dim: int) -> "AttentionPattern":
    """The pattern named by ``config.attention`` (a validated PyramidionConfig)."""
    name = config.attention
    if name not in ATTENTION_PATTERNS:
        raise ValueError(f"--encoder-attention: unknown value {name!r}; choose from "
                         f"{sorted(ATTENTION_PATTERNS)}")
    return ATTENTION_PATTERNS[name].from_config(config, embed_dim)


class AttentionPattern(nn.Module):
    """``pattern(layer, index, x (B, T, C), mask (B, T), need_usage) -> LayerOutput``.

    ``index`` is the layer's position in the encoder (interleaved patterns alternate on it).
    A pattern holds no parameters unless it needs some (the compressed memory's compressors),
    so checkpoints of the plain patterns have no entries for it.
    """

    @classmethod
    def from_config(cls, config, embed_dim: int) -> "AttentionPattern":
        return cls()

    def forward(self, layer: EncoderLayer, index: int, x: Tensor, mask: Tensor,
                need_usage: bool = False) -> LayerOutput:
        raise NotImplementedError


def blockwise(layer: EncoderLayer, x: Tensor, mask: Tensor, block: int,
              need_usage: bool) -> Tuple[Tensor, Tensor]:
    """The layer on each live block of ``block`` tokens of x (B, T, C); (y, usage or None)."""
    return run_blockwise(lambda xc, mc: layer(xc, mc, need_usage=need_usage), x, mask, block)


# registered in the order the names are listed in (flag help, errors): the default first
@register_attention("blockwise")
class BlockwiseAttention(AttentionPattern):
    def __init__(self, chunk_size: int):
        super().__init__()
        self.chunk_size = chunk_size

    @classmethod
    def from_config(cls, config, embed_dim):
        return cls(config.chunk_size)

    def forward(self, layer, index, x, mask, need_usage=False):
        return LayerOutput(*blockwise(layer, x, mask, self.chunk_size, need_usage))


@register_attention("full")
class FullAttention(AttentionPattern):
    def forward(self, layer, index, x, mask, need_usage=False):
        return LayerOutput(*layer(x, mask, need_usage=need_usage))


class _Factorized(AttentionPattern):
    """Shared by strided and fixed: block length, and the local (row) half on even layers."""

    def __init__(self, stride: int):
        super().__init__()
        self.stride = stride

    def block_length(self, T: int) -> int:
        if self.stride > 0:
            return self.stride
        return math.isqrt(T - 1) + 1 if T > 1 else 1             # ceil(sqrt(T))

    def forward(self, layer, index, x, mask, need_usage=False):
        l = self.block_length(x.size(1))
        if index % 2 == 0:
            return LayerOutput(*blockwise(layer, x, mask, l, need_usage))
        return self.forward_odd(layer, x, mask, l, need_usage)

    def forward_odd(self, layer, x, mask, l, need_usage) -> LayerOutput:
        raise NotImplementedError


@register_attention("strided")
class StridedAttention(_Factorized):
    @classmethod
    def from_config(cls, config, embed_dim):
        return cls(config.attention_stride)

    def forward_odd(self, layer, x, mask, l, need_usage):
        B, T, C = x.shape
        xp, mp, N = pad_to_blocks(x, mask, l)
        # columns become contiguous: position i*l + j of the (N, l) grid moves to j*N + i, so
        # column j is chunk j of length N: blockwise attention over chunks of N is column attention
        xg = xp.view(B, N, l, C).transpose(1, 2).reshape(B, l * N, C)    # (B, l*N, C)
        mg = mp.view(B, N, l).transpose(1, 2).reshape(B, l * N)          # (B, l*N)
        y, usage = blockwise(layer, xg, mg, N, need_usage)
        y = y.view(B, l, N, C).transpose(1, 2).reshape(B, N * l, C)[:, :T]  # back to (B, T, C)
        if usage is not None:
            usage = usage.view(B, l, N).transpose(1, 2).reshape(B, N * l)[:, :T]  # (B, T)
        return LayerOutput(y, usage)


@register_attention("fixed")
class FixedAttention(_Factorized):
    def __init__(self, stride: int, summary_cells: int):
        super().__init__(stride)
        self.summary_cells = summary_cells

    @classmethod
    def from_config(cls, config, embed_dim):
        return cls(config.attention_stride, config.fixed_summary_cells)

    def summary_positions(self, mask: Tensor, l: int, N: int) -> Tuple[Tensor, Tensor]:
        """(B, N*l) padding mask -> positions (B, N*s) of the summary cells and their validity."""
        B = mask.size(0)
        s = min(self.summary_cells, l)
        real = ~mask.view(B, N, l)                                          # (B, N, l)
        offset = torch.arange(l, device=mask.device).expand(B, N, l)
        # the last s real tokens of a block rank highest; padding ranks below every real token
        ranked = torch.where(real, offset, torch.full_like(offset, -1))
        top = ranked.topk(s, dim=-1).indices.sort(dim=-1).values            # (B, N, s)
        valid = real.gather(-1, top)                                        # (B, N, s)
        start = torch.arange(N, device=mask.device).view(1, N, 1) * l
        return (top + start).reshape(B, N * s), valid.reshape(B, N * s)     # (B, S), S = N*s

    def forward_odd(self, layer, x, mask, l, need_usage):
        B, T, C = x.shape
        xp, mp, N = pad_to_blocks(x, mask, l)
        positions, valid = self.summary_positions(mp, l, N)                 # (B, S), (B, S)
        # a row made only of padding has no summary cell: give it one, so that its (ignored)
        # queries see a key and stay finite instead of NaN
        valid[:, 0] |= ~valid.any(dim=1)
        S = positions.size(1)
        keys = xp.gather(1, positions.unsqueeze(-1).expand(B, S, C))        # (B, S, C)
        y, usage = layer(x, mask, key_value=keys, key_padding_mask=~valid, need_usage=need_usage)
        if usage is not None:
            # usage lands on the summary cells only: scatter it back to their positions
            usage = usage.new_zeros(B, N * l).scatter_add(1, positions, usage)[:, :T]  # (B, T)
        return LayerOutput(y, usage)
