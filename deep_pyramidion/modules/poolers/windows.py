"""The Compressive Transformer's compression functions as poolers: avg, max, conv, dilated-conv
(Rae et al., 2020; seeds/004). SeqPool's windowed pooler (seqpool.py) shares the window base.

Shape legend (batch-first):
    B   batch               n   input length           D   channels
    k   output width, min(width, n)
    r   rate, ceil(n / k): output j summarizes the window of input positions [j*r, (j+1)*r)
    K   learned taps of conv / dilated-conv (--compression-taps): conv resamples them to the r
        tokens of a window, dilated-conv spreads them over K windows

The rate is the one of the batch at hand, so one module serves every length (a model trained on 2k
tokens reads 8k at inference with a rate 4x larger). When r does not divide n, the input is padded
up to k*r with masked positions: masked positions never contribute to an output, and an output
window holding only padding is masked (mask True, value 0). Nothing is dropped from the tail.
"""
import math
from typing import Optional, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from deep_pyramidion.modules.chunking import pad_to_blocks
from deep_pyramidion.modules.poolers.registry import Assignment, Pooled, Pooler, register_pooler


def split_windows(x: Tensor, mask: Tensor, k: int) -> Tuple[Tensor, Tensor, int]:
    """(B, n, D) + (B, n) -> windows (B, k, r, D) + (B, k, r), and r; padded positions masked."""
    B, n, D = x.shape
    r = -(-n // k)
    x, mask, _ = pad_to_blocks(x, mask, r, blocks=k)
    return x.view(B, k, r, D), mask.view(B, k, r), r


def window_assignment(mw: Tensor, weight: Tensor) -> Assignment:
    """Members of each window (B, k, r): positions j*r + i, -1 where padded; weights given."""
    B, k, r = mw.shape
    index = torch.arange(k * r, device=mw.device).view(1, k, r).expand(B, k, r)
    return Assignment(index.masked_fill(mw, -1), weight.masked_fill(mw, 0.0))


class WindowPooler(Pooler):
    """Base of the window poolers: identity when nothing needs pooling, windows otherwise."""

    def __init__(self, embed_dim: int, width: int):
        super().__init__(width)
        self.embed_dim = embed_dim

    @classmethod
    def from_config(cls, embed_dim, width, config):
        return cls(embed_dim, width)

    def forward(self, x, mask, usage=None, with_assignment=False):
        k = min(self.width, x.size(1))
        if k >= x.size(1):
            return self.pass_through(x, mask, with_assignment)
        xw, mw, r = split_windows(x.masked_fill(mask.unsqueeze(-1), 0.0), mask, k)
        y_mask = mw.all(dim=-1)                                         # (B, k)
        y, weight = self.pool_windows(xw, mw, r)                        # (B, k, D), (B, k, r)
        assignment = None
        if with_assignment and weight is not None:
            assignment = window_assignment(mw, weight)
        return Pooled(y.masked_fill(y_mask.unsqueeze(-1), 0.0), y_mask, assignment)

    def pool_windows(self, xw: Tensor, mw: Tensor, r: int) -> Tuple[Tensor, Optional[Tensor]]:
        """(B, k, r, D) with masked positions already zero, (B, k, r) -> (B, k, D), and the
        weight of each window position (B, k, r) when the output is a weighted sum, else None."""
        raise NotImplementedError


@register_pooler("avg")
class AvgPooler(WindowPooler):
    """Mean over the real positions of each window (kernel = stride = r)."""

    def pool_windows(self, xw, mw, r):
        count = (~mw).sum(dim=-1, keepdim=True).clamp(min=1).to(xw.dtype)   # (B, k, 1)
        return xw.sum(dim=2) / count, (1.0 / count.float()).expand(mw.shape)


@register_pooler("max")
class MaxPooler(WindowPooler):
    """Channel-wise max over the real positions of each window (kernel = stride = r)."""

    def pool_windows(self, xw, mw, r):
        return xw.masked_fill(mw.unsqueeze(-1), float("-inf")).amax(dim=2), None  # (B, k, D)


class _LearnedTaps(WindowPooler):
    """A D -> D convolution whose K taps are parameters; subclasses map them onto a window."""

    trainable = True

    def __init__(self, embed_dim: int, width: int, taps: int = 4):
        super().__init__(embed_dim, width)
        if not isinstance(taps, int) or taps < 1:
            raise ValueError(f"--compression-taps must be a positive integer, got {taps!r}")
        self.taps = taps
        self.weight = nn.Parameter(torch.empty(embed_dim, embed_dim, taps))  # (D_out, D_in, K)
        self.bias = nn.Parameter(torch.empty(embed_dim))
        # nn.Conv1d's initialisation for a kernel of K taps
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        bound = 1.0 / math.sqrt(embed_dim * taps)
        nn.init.uniform_(self.bias, -bound, bound)

    @classmethod
    def from_config(cls, embed_dim, width, config):
        return cls(embed_dim, width, config.compression_taps)

    @staticmethod
    def flat(xw: Tensor) -> Tensor:
        B, k, r, D = xw.shape
        return xw.reshape(B, k * r, D).transpose(1, 2)   # (B, k, r, D) -> (B, D, k*r)


@register_pooler("conv")
class ConvPooler(_LearnedTaps):
    """1D convolution with kernel = stride = r.

    The kernel is stored at a fixed resolution of K taps and resampled linearly to the r taps of
    the batch at hand, scaled by K/r so that the output's scale does not follow the rate (the sum
    of the taps is kept exactly for K <= 2, approximately beyond). One set of weights serves every
    rate, and every position of a window contributes.
    """

    def pool_windows(self, xw, mw, r):
        weight = self.weight.to(xw.dtype)
        if r != self.taps:
            weight = F.interpolate(weight, size=r, mode="linear", align_corners=False) \
                * (self.taps / r)                                          # (D, D, K) -> (D, D, r)
        y = F.conv1d(self.flat(xw), weight, self.bias.to(xw.dtype), stride=r)  # (B, D, k)
        return y.transpose(1, 2), None                                    # (B, k, D)


@register_pooler("dilated-conv")
class DilatedConvPooler(_LearnedTaps):
    """Dilated 1D convolution: K taps spaced one window (r tokens) apart, stride r.

    Each tap reads the mean of the real tokens of its window, so output j mixes the K windows
    around its own (j - (K-1)//2 .. j + K//2): the receptive field is K*r tokens instead of conv's
    r, every real token contributes, and the parameter count does not depend on the rate. Taps
    outside the sequence, and windows holding only padding, contribute nothing.
    """

    def pool_windows(self, xw, mw, r):
        count = (~mw).sum(dim=-1, keepdim=True).clamp(min=1).to(xw.dtype)    # (B, k, 1)
        means = (xw.sum(dim=2) / count).transpose(1, 2)                      # (B, D, k)
        left = (self.taps - 1) // 2
        means = F.pad(means, (left, self.taps - 1 - left))                    # (B, D, k + K - 1)
        y = F.conv1d(means, self.weight.to(xw.dtype), self.bias.to(xw.dtype))  # (B, D, k)
        return y.transpose(1, 2), None                                       # (B, k, D)
