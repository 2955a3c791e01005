"""SeqPool (Compact Transformers, Hassani et al. 2021; seeds/003): attention-weighted pooling.

Shape legend (batch-first):
    B   batch           L   sequence length         D   channels
    n   input length    k   output width, min(width, n)
    r   rate, ceil(n / k): the window of output j is [j*r, (j+1)*r)

``SeqPool(dim)(x, mask=None)``: one linear layer scores every element, a softmax over the
sequence turns the scores into weights, and the output is the weighted sum, (B, L, D) -> (B, D).
Usable on its own, outside fairseq::

    from deep_pyramidion.modules import SeqPool
    pool = SeqPool(128)
    y = pool(torch.randn(4, 1024, 128))                 # (4, 128)

``--encoder-pooling seqpool`` applies it per window of r tokens between encoder layers.
"""
from typing import Optional

import torch
import torch.nn as nn
from torch import Tensor

from deep_pyramidion.modules.poolers.registry import register_pooler
from deep_pyramidion.modules.poolers.windows import WindowPooler


class SeqPool(nn.Module):
    """(B, L, D) -> (B, D): ``softmax(x @ w + b)``-weighted sum of the sequence.

    mask (B, L) bool, True = padding: padded elements get weight 0 and their values are never read.
    A row made only of padding pools to the zero vector (instead of NaN).
    """

    def __init__(self, dim: int):
        super().__init__()
        if not isinstance(dim, int) or dim <= 0:
            raise ValueError(f"SeqPool: dim must be a positive integer, got {dim!r}")
        self.dim = dim
        self.attention = nn.Linear(dim, 1)

    def weights(self, x: Tensor, mask: Optional[Tensor] = None) -> Tensor:
        """The pooling weights (B, L), float32: 0 on padding, each row sums to 1 (or 0 if empty)."""
        if x.dim() != 3 or x.size(-1) != self.dim:
            raise ValueError(f"SeqPool({self.dim}): expected x of shape (B, L, {self.dim}), "
                             f"got {tuple(x.shape)}")
        # fp32 softmax: long sequences under --fp16 would round small weights to zero
        logits = self.attention(x).squeeze(-1).float()                  # (B, L)
        if mask is None:
            return torch.softmax(logits, dim=1)
        if mask.shape != x.shape[:2]:
            raise ValueError(f"SeqPool: mask must be (B, L) = {tuple(x.shape[:2])}, "
                             f"got {tuple(mask.shape)}")
        empty = mask.all(dim=1, keepdim=True)                           # (B, 1)
        # an all-padding row gets finite logits (no NaN), then weight 0 everywhere
        logits = logits.masked_fill(mask & ~empty, float("-inf"))
        return torch.softmax(logits, dim=1).masked_fill(mask, 0.0)

    def forward(self, x: Tensor, mask: Optional[Tensor] = None) -> Tensor:
        weights = self.weights(x, mask)
        if mask is not None:
            x = x.masked_fill(mask.unsqueeze(-1), 0.0)
        return torch.bmm(weights.to(x.dtype).unsqueeze(1), x).squeeze(1)  # (B, 1, L) @ (B, L, D)


@register_pooler("seqpool")
class WindowSeqPooler(WindowPooler):
    """SeqPool over each window of r tokens: output j is the attention-weighted sum of window j."""

    trainable = True

    def __init__(self, embed_dim: int, width: int):
        super().__init__(embed_dim, width)
        self.pool = SeqPool(embed_dim)

    def pool_windows(self, xw, mw, r):
        B, k, _, D = xw.shape
        flat_x, flat_m = xw.reshape(B * k, r, D), mw.reshape(B * k, r)
        weights = self.pool.weights(flat_x, flat_m)                      # (B*k, r)
        y = torch.bmm(weights.to(xw.dtype).unsqueeze(1), flat_x).squeeze(1)  # (B*k, D)
        return y.view(B, k, D), weights.view(B, k, r)
