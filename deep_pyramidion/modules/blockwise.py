"""Blockwise attention by reshaping: the chunk axis folds into the batch axis.

Shape legend (fairseq's time-first layout):
    T   sequence length            B   batch
    C   channels (embed dim)       c   chunk size, min(chunk_size, T)
    N   chunks per row, ceil(T/c)  L   live chunks (holding at least one real token), L <= B*N

Any module that is position-wise except for its self-attention (a whole fairseq
``TransformerEncoderLayer``) becomes blockwise when run on the chunks instead of the sequence. A tail
shorter than a chunk is padded and masked, never dropped; a chunk made only of padding is not computed
at all (no softmax over an all-masked row, no work spent on padding when a 1k-token and an 8k-token
document share a batch).
"""
from typing import Callable, NamedTuple, Optional

import torch
import torch.nn.functional as F
from torch import Tensor


class Chunks(NamedTuple):
    x: Tensor                # (c, L, C) the live chunks, batch-folded
    padding_mask: Tensor     # (L, c) True = padding
    live: Tensor             # (L,) index of each live chunk in the flattened (B*N) chunk axis
    length: int              # T, to cut the tail padding off again
    batch: int               # B
    num_chunks: int          # N


def split_chunks(x: Tensor, padding_mask: Optional[Tensor], chunk_size: int) -> Chunks:
    """(T, B, C) + (B, T) -> live chunks (c, L, C) + (L, c)."""
    if chunk_size <= 0:
        raise ValueError(f"--chunk-size must be positive, got {chunk_size}")
    T, B, C = x.shape
    c = min(chunk_size, T)
    N = -(-T // c)
    pad = N * c - T
    if padding_mask is None:
        padding_mask = x.new_zeros(B, T, dtype=torch.bool)
    if pad:
        x = F.pad(x, (0, 0, 0, 0, 0, pad))                          # (N*c, B, C)
        padding_mask = F.pad(padding_mask, (0, pad), value=True)    # (B, N*c)
    chunks = x.view(N, c, B, C).permute(1, 2, 0, 3).reshape(c, B * N, C)  # (c, B*N, C), chunk b*N+n
    mask = padding_mask.reshape(B * N, c)                                 # (B*N, c)
    live = (~mask).any(dim=1).nonzero().squeeze(1)                         # (L,)
    if live.numel() < B * N:
        chunks = chunks.index_select(1, live)                              # (c, L, C)
        mask = mask.index_select(0, live)                                  # (L, c)
    return Chunks(chunks, mask, live, T, B, N)


def merge_chunks(y: Tensor, chunks: Chunks) -> Tensor:
    """Inverse of :func:`split_chunks`: (c, L, C) -> (T, B, C); dead chunks come back as zeros."""
    c, L, C = y.shape
    B, N = chunks.batch, chunks.num_chunks
    if L < B * N:
        y = y.new_zeros(c, B * N, C).index_copy(1, chunks.live, y)   # (c, B*N, C)
    y = y.view(c, B, N, C).permute(2, 0, 1, 3).reshape(N * c, B, C)   # (N*c, B, C)
    return y[: chunks.length]


def run_blockwise(
    layer: Callable[[Tensor, Optional[Tensor]], Tensor],
    x: Tensor,
    padding_mask: Optional[Tensor],
    chunk_size: int,
) -> Tensor:
    """Run ``layer(x, padding_mask)`` independently on every live chunk of ``x`` (T, B, C)."""
    T = x.size(0)
    if T <= chunk_size and (padding_mask is None or not padding_mask.all(dim=1).any()):
        # one chunk per row and each holds a real token: the plain layer is already blockwise
        # (a row of only padding goes through split_chunks, which leaves it out)
        return layer(x, padding_mask)
    chunks = split_chunks(x, padding_mask, chunk_size)
    mask = chunks.padding_mask if chunks.padding_mask.any() else None
    return merge_chunks(layer(chunks.x, mask), chunks)


# Additions for the other attention patterns (modules/attention.py). The functions above keep their
# behaviour; these only add ways to get at every chunk and to carry extra per-token outputs.


def all_chunks(x: Tensor, padding_mask: Optional[Tensor], chunk_size: int):
    """(T, B, C) + (B, T) -> every chunk, dead ones included: (c, B*N, C), (B*N, c), N.

    Patterns that pair a chunk with its neighbour (memory of the previous chunk) need the full grid,
    so that chunk ``b*N + n - 1`` is the one before chunk ``b*N + n``; they select live chunks after
    pairing.
    """
    if chunk_size <= 0:
        raise ValueError(f"--chunk-size must be positive, got {chunk_size}")
    T, B, C = x.shape
    c = min(chunk_size, T)
    N = -(-T // c)
    pad = N * c - T
    if padding_mask is None:
        padding_mask = x.new_zeros(B, T, dtype=torch.bool)
    if pad:
        x = F.pad(x, (0, 0, 0, 0, 0, pad))                          # (N*c, B, C)
        padding_mask = F.pad(padding_mask, (0, pad), value=True)    # (B, N*c)
    chunks = x.view(N, c, B, C).permute(1, 2, 0, 3).reshape(c, B * N, C)  # (c, B*N, C), chunk b*N+n
    return chunks, padding_mask.reshape(B * N, c), N                       # mask (B*N, c)


def run_blockwise_multi(
    layer: Callable[[Tensor, Optional[Tensor]], tuple],
    x: Tensor,
    padding_mask: Optional[Tensor],
    chunk_size: int,
) -> tuple:
    """:func:`run_blockwise` for a layer that returns a tuple of time-first tensors.

    Each returned tensor is (c, L, ...) per chunk, e.g. the output (c, L, C) and the attention each
    token received (c, L); each comes back as (T, B, ...), dead chunks as zeros.
    """
    T = x.size(0)
    if T <= chunk_size and (padding_mask is None or not padding_mask.all(dim=1).any()):
        # as run_blockwise: one chunk per row, each holding a real token
        return tuple(layer(x, padding_mask))
    chunks = split_chunks(x, padding_mask, chunk_size)
    mask = chunks.padding_mask if chunks.padding_mask.any() else None
    merged = []
    for out in layer(chunks.x, mask):
        if out.dim() == 2:
            merged.append(merge_chunks(out.unsqueeze(-1), chunks).squeeze(-1))  # (c, L) -> (T, B)
        else:
            merged.append(merge_chunks(out, chunks))                     # (c, L, C) -> (T, B, C)
    return tuple(merged)
