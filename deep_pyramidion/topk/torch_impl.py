"""Two-phase successive-halving top-k in plain PyTorch, vectorised over the batch.

Shape legend: B batch, n input length, k output width, d rounds (k * 2**d >= n), M = 2**d
members per output, D features.

Every round is linear in x and the pairing depends only on the scores, so the operator splits in
two (design.md section 3, "Why it can be fast"):

- phase 1, ``tournament``: play all d rounds on the (B, n) scores alone and record, for each of
  the k outputs, its M member indices and weights (product of the pair weights along its path).
  Only (B, n)-sized tensors are touched; a Python loop over the d rounds, none over the batch.
- phase 2, ``gather_weighted_sum``: y[b, j] = sum_m w[b, j, m] * x[b, idx[b, j, m]], the only step
  that reads D-sized data. Here it is one ``embedding_bag(mode="sum", per_sample_weights=...)``:
  it reads every row of x once, never builds (B, k, M, D), and its backward accumulates.

The Triton path (triton_impl.py) reuses ``tournament`` and replaces phase 2 only.

Virtual padding members (positions n .. k * 2**d - 1 that do not exist in x) get index -1 in
``idx`` and weight exactly 0.
"""
from __future__ import annotations

from typing import Optional, Tuple

import torch
import torch.nn.functional as F

from .common import compute_dtype, num_rounds, pair_weights


def tournament(
    scores: torch.Tensor,  # (B, n)
    k: int,
    mask: Optional[torch.Tensor] = None,  # (B, n) bool, True = padding
    base: float = 20.0,
    flip_right: bool = True,
    sort_back: bool = True,
) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Phase 1: the whole tournament on scores.

    Returns
      idx      (B, k, M) long: member positions in [0, n), -1 for virtual padding members. Every
               position in [0, n) appears exactly once per batch row (the groups partition x).
      w        (B, k, M) float32 (float64 for float64 scores): member weights, differentiable
               w.r.t. scores; exactly 0 for padding members.
      y_scores (B, k) in scores.dtype
      y_mask   (B, k) bool, True where every member is padding.
    """
    B, n = scores.shape
    d = num_rounds(n, k)
    n_pad = k << d
    dev = scores.device
    s = scores.to(compute_dtype(scores.dtype))  # (B, n)
    msk = mask if mask is not None else torch.zeros(B, n, dtype=torch.bool, device=dev)
    if n_pad > n:  # virtual padding elements at the end: score 0, flagged as padding
        s = F.pad(s, (0, n_pad - n))
        msk = F.pad(msk, (0, n_pad - n), value=True)
    s = s.masked_fill(msk, 0.0)  # (B, n_pad); stored padding scores never matter

    pos = torch.arange(n_pad, device=dev)
    pos = torch.where(pos < n, pos, torch.full_like(pos, -1))  # virtual members -> -1
    idx = pos.view(1, n_pad, 1).expand(B, n_pad, 1)  # (B, m, Mc): members of each current element
    # Padding starts at weight 0: this is what zeroes padded rows in the identity case (d = 0).
    w = (~msk).to(s.dtype).unsqueeze(-1)  # (B, m, Mc)

    for _ in range(d):
        m = s.shape[1]
        half = m // 2
        key = s.masked_fill(msk, float("-inf"))  # padding sorts last, in position order
        order = torch.sort(key, dim=1, descending=True, stable=True).indices  # (B, m)
        left, right = order[:, :half], order[:, half:]  # (B, half) each
        if flip_right:
            right = right.flip(1)  # best paired with worst
        if sort_back:
            left, perm = torch.sort(left, dim=1)  # ascending position of the left member
            right = right.gather(1, perm)

        s_l, s_r = s.gather(1, left), s.gather(1, right)
        m_l, m_r = msk.gather(1, left), msk.gather(1, right)
        a0, a1 = pair_weights(s_l, s_r, m_l, m_r, base)  # (B, half)
        s = a0 * s_l + a1 * s_r
        msk = m_l & m_r

        # Member lists: left's members first, then right's; Mc doubles every round.
        mc = idx.shape[2]
        gl = left.unsqueeze(-1).expand(B, half, mc)
        gr = right.unsqueeze(-1).expand(B, half, mc)
        idx = torch.cat([idx.gather(1, gl), idx.gather(1, gr)], dim=2)  # (B, half, 2 * Mc)
        w = torch.cat([a0.unsqueeze(-1) * w.gather(1, gl), a1.unsqueeze(-1) * w.gather(1, gr)], dim=2)

    return idx.contiguous(), w, s.to(scores.dtype), msk


def gather_weighted_sum(x: torch.Tensor, idx: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """Phase 2: y[b, j] = sum_m w[b, j, m] * x[b, idx[b, j, m]]; idx -1 contributes nothing.

    x (B, n, D), idx (B, k, M) long, w (B, k, M) -> y (B, k, D) in x.dtype. Differentiable w.r.t.
    x and w. bf16/fp16 x is mixed in float32 (this CPU path favours accuracy; the fast half
    precision path is Triton on CUDA). Values at positions whose weight is 0 must be finite
    (0 * inf is NaN), which holds for any finite padding garbage.
    """
    B, n, D = x.shape
    _, k, M = idx.shape
    if n == 0:  # nothing to read: every member is virtual
        return x.new_zeros(B, k, D) + 0 * w.sum()  # keeps w in the graph
    work = x.dtype if x.dtype in (torch.float32, torch.float64) else torch.float32
    virtual = idx < 0
    # Row of x viewed as (B * n, D). A virtual member points at row b * n (a real row of the same
    # item) with weight 0: it adds 0 to y, and embedding_bag's backward accumulates, so the zero
    # contribution cannot overwrite the real gradient of that row.
    offset = (torch.arange(B, device=x.device) * n).view(B, 1, 1)
    rows = (idx.clamp_min(0) + offset).view(B * k, M)  # (B * k, M)
    weights = w.masked_fill(virtual, 0.0).to(work).reshape(B * k, M)  # (B * k, M)
    x_flat = x.reshape(B * n, D).to(work)  # a view for contiguous float32/64 x: no copy
    y = F.embedding_bag(rows, x_flat, mode="sum", per_sample_weights=weights)  # (B * k, D)
    return y.view(B, k, D).to(x.dtype)


def successive_halving_topk_torch(
    x: torch.Tensor,
    scores: torch.Tensor,
    k: int,
    mask: Optional[torch.Tensor] = None,
    base: float = 20.0,
    flip_right: bool = True,
    sort_back: bool = True,
) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Phase 1 + phase 2. Inputs are assumed validated (see common.check_inputs)."""
    idx, w, y_scores, y_mask = tournament(scores, k, mask, base, flip_right, sort_back)
    return gather_weighted_sum(x, idx, w), y_scores, y_mask
