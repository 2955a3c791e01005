"""Cutting a sequence into blocks: the one padding helper and the live-chunk selection.

Shape legend (batch-first, as everywhere in the core):
    B   batch               T   sequence length          C   channels
    c   block length        N   blocks per row, ceil(T / c) (or more when asked for)
    L   live blocks (holding at least one real token), L <= B*N

Every block pattern (blockwise attention, the strided and fixed patterns, the chunk memory, the
window poolers) pads the sequence to whole blocks with :func:`pad_to_blocks`: the padding is
masked, so a short tail is never dropped and never read. Blockwise attention also skips blocks
made only of padding (:func:`split_chunks` keeps the live ones, :func:`merge_chunks` puts them
back): no softmax over an all-masked row, and no work spent on padding when a 1k-token and an
8k-token document share a batch.
"""
from typing import Callable, NamedTuple, Optional, Tuple, Union

import torch.nn.functional as F
from torch import Tensor


def pad_to_blocks(x: Tensor, mask: Tensor, block: int, blocks: Optional[int] = None
                  ) -> Tuple[Tensor, Tensor, int]:
    """(B, T, ...) + (B, T) -> (B, N*block, ...) + (B, N*block), and N.

    N = max(ceil(T / block), ``blocks``); added positions are zeros and masked (True).
    """
    if block <= 0:
        raise ValueError(f"block length must be positive, got {block}")
    B, T = mask.shape
    N = max(-(-T // block), blocks or 0)
    pad = N * block - T
    if pad:
        x = F.pad(x, (0, 0) * (x.dim() - 2) + (0, pad))        # (B, N*block, ...)
        mask = F.pad(mask, (0, pad), value=True)                 # (B, N*block)
    return x, mask, N


class Chunks(NamedTuple):
    x: Tensor                # (L, c, C) the live chunks, chunk b*N + n of the grid at row b
    padding_mask: Tensor     # (L, c) True = padding
    live: Tensor             # (L,) index of each live chunk in the flattened (B*N) grid
    length: int              # T, to cut the tail padding off again
    batch: int               # B
    num_chunks: int          # N


def all_chunks(x: Tensor, mask: Tensor, chunk_size: int) -> Tuple[Tensor, Tensor, int]:
    """(B, T, C) + (B, T) -> every chunk, dead ones included: (B*N, c, C), (B*N, c), N.

    c = min(chunk_size, T). Patterns that pair a chunk with its neighbour (the memory of the
    previous chunk) need the whole grid, so that chunk ``b*N + n - 1`` is the one before
    ``b*N + n``; they select the live chunks after pairing.
    """
    B, T, C = x.shape
    c = min(chunk_size, T)
    x, mask, N = pad_to_blocks(x, mask, c)
    return x.reshape(B * N, c, C), mask.reshape(B * N, c), N


def split_chunks(x: Tensor, mask: Tensor, chunk_size: int) -> Chunks:
    """(B, T, C) + (B, T) -> the live chunks (L, c, C) + (L, c)."""
    B, T, _ = x.shape
    chunks, chunk_mask, N = all_chunks(x, mask, chunk_size)
    live = (~chunk_mask).any(dim=1).nonzero().squeeze(1)                 # (L,)
    if live.numel() < B * N:
        chunks = chunks.index_select(0, live)                            # (L, c, C)
        chunk_mask = chunk_mask.index_select(0, live)                    # (L, c)
    return Chunks(chunks, chunk_mask, live, T, B, N)


def merge_chunks(y: Tensor, chunks: Chunks) -> Tensor:
    """Inverse of :func:`split_chunks`: (L, c, ...) -> (B, T, ...); dead chunks come back as 0."""
    B, N = chunks.batch, chunks.num_chunks
    L, c = y.shape[:2]
    if L < B * N:
        y = y.new_zeros((B * N,) + y.shape[1:]).index_copy(0, chunks.live, y)  # (B*N, c, ...)
    return y.reshape((B, N * c) + y.shape[2:])[:, : chunks.length]


def run_blockwise(fn: Callable[[Tensor, Tensor], Union[Tensor, tuple]], x: Tensor, mask: Tensor,
                  chunk_size: int):
    """``fn(chunk_x, chunk_mask)`` on every live chunk of x (B, T, C) independently.

    fn returns a (L, c, ...) tensor or a tuple of them (None entries pass through); each comes
    back as (B, T, ...).
    """
    T = x.size(1)
    if T <= chunk_size and not mask.all(dim=1).any():
        # one chunk per row and each holds a real token: fn on the rows is already blockwise
        # (a row of only padding goes through split_chunks, which leaves it out)
        return fn(x, mask)
    chunks = split_chunks(x, mask, chunk_size)
    out = fn(chunks.x, chunks.padding_mask)
    if isinstance(out, tuple):
        return tuple(None if t is None else merge_chunks(t, chunks) for t in out)
    return merge_chunks(out, chunks)


__all__ = ["Chunks", "all_chunks", "merge_chunks", "pad_to_blocks", "run_blockwise",
           "split_chunks"]
