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
  it reads every row of x once and never builds (B, k, M, D). Because the groups partition x, the
  backward is a permutation (``_PartitionedBagSum``): grad_x written once, no zero-fill.

Where the CPU time goes (B=16, n=8192 -> k=512, D=512, float32; see BENCHMARKS.md): phase 2 runs
at memory bandwidth; phase 1 is a few dozen small ops per round, led by the sorts, which is why
the ordering uses a radix-sorted integer key and the member lists are unfolded once at the end.

The Triton path (triton_impl.py) reuses ``tournament`` and replaces phase 2 only.

Virtual padding members (positions n .. k * 2**d - 1 that do not exist in x) get index -1 in
``idx`` and weight exactly 0.
"""
from __future__ import annotations

from typing import Optional, Tuple

import torch
import torch.nn.functional as F
from torch.autograd.function import once_differentiable

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
    # (B, n_pad); stored padding scores never matter. Contiguous: flat positions b * m + i below.
    s = s.masked_fill(msk, 0.0).contiguous()

    # Play the rounds on scores only, remembering each round's pairs and pair weights. Positions
    # are flat (b * m + i for a round of m elements) so that every gather is one index_select.
    rounds = []
    for _ in range(d):
        m = s.shape[1]
        half = m // 2
        order = descending_order(s, msk)  # (B, m) flat positions, best first, padding last
        left, right = pair_up(order, flip_right, sort_back)  # (B, half) flat positions
        pairs = torch.stack([left, right], dim=2).view(B * half, 2)  # row b * half + j: pair j
        s_p = s.view(-1).index_select(0, pairs.view(-1)).view(B * half, 2)
        m_p = msk.reshape(-1).index_select(0, pairs.view(-1)).view(B * half, 2)
        s_l, s_r, m_l, m_r = s_p[:, 0], s_p[:, 1], m_p[:, 0], m_p[:, 1]
        a0, a1 = pair_weights(s_l, s_r, m_l, m_r, base)  # (B * half,)
        s = (a0 * s_l + a1 * s_r).view(B, half)
        msk = (m_l & m_r).view(B, half)
        rounds.append((pairs, torch.stack([a0, a1], dim=1)))  # (B * half, 2) each

    # Unfold the tree from the k outputs down to the inputs. idx holds, per output, flat positions
    # in the list of the round being unfolded; each position becomes its pair (left, right) and
    # w picks up the pair weights. Top-down, the work is ~2 * B * n in total (bottom-up it would be
    # B * n per round). Padding starts at weight 0: that zeroes padded rows in the identity case
    # (d = 0); for d > 0 padding members are zeroed by their pair weights anyway.
    idx = torch.arange(B * k, device=dev).view(B * k, 1)  # (B * k, Mc)
    w = (~msk).to(s.dtype).view(B * k, 1)  # (B * k, Mc)
    for pairs, a in reversed(rounds):
        mc = idx.shape[1]
        parent = idx.view(-1)
        idx = pairs.index_select(0, parent).view(B * k, 2 * mc)
        w = (w.unsqueeze(-1) * a.index_select(0, parent).view(B * k, mc, 2)).view(B * k, 2 * mc)

    rows = torch.arange(B, device=dev).view(B, 1)
    pos = idx.view(B, -1) - rows * n_pad  # (B, k * M): position in the padded row
    idx = pos.masked_fill_(pos >= n, -1).view(B, k, -1)  # virtual members -> -1
    return idx, w.view(B, k, -1), s.to(scores.dtype), msk


def descending_order(s: torch.Tensor, msk: torch.Tensor) -> torch.Tensor:
    """Stable argsort of each row of s (B, m), score descending, padding last (in position order).

    Returns flat positions b * m + i (B, m), the order of torch.sort(s.masked_fill(msk, -inf),
    dim=1, descending=True, stable=True). For float32 it sorts one flat integer key instead: the
    score's bits mapped to an integer that sorts in descending score order, plus the row times a
    row span. PyTorch sorts a 1-D integer tensor with a stable radix sort, several times faster on
    the CPU than the row-wise float sort (ties keep position order, as required). s must be
    contiguous; float64 (gradcheck) takes the plain sort.
    """
    B, m = s.shape
    rows = torch.arange(B, device=s.device).view(B, 1)
    if s.dtype != torch.float32:
        key = s.masked_fill(msk, float("-inf"))
        return torch.sort(key, dim=1, descending=True, stable=True).indices + rows * m
    bits = (s + 0.0).view(torch.int32)  # + 0.0 turns -0.0 into +0.0 (they must tie)
    ordered = bits ^ ((bits >> 31) & 0x7FFFFFFF)  # int32 that sorts like the floats
    # ~ordered sorts descending; finite scores never reach int32 max, which is left for padding.
    desc = torch.bitwise_not(ordered).masked_fill_(msk, 0x7FFFFFFF)
    if s.device.type != "cpu":  # no host sync: row in the high 32 bits
        key = desc.to(torch.int64) + ((rows << 32) + 2**31)  # (B, m): each row its own block
    else:
        # Radix passes scale with the key's bit width: shift keys to start at 0 and give each row
        # just the span it needs. Sigmoid scores span ~2**26 key values, so B * span usually fits
        # int32, which halves the passes and the bytes moved compared with the 64-bit key.
        lo, hi = torch.aminmax(desc)
        span = int(hi) - int(lo) + 1
        if B * span < 2**31:
            key = (desc - lo) + (rows * span).to(torch.int32)  # (B, m) int32
        else:
            key = (desc.to(torch.int64) - int(lo)) + rows * span  # (B, m) int64
    return torch.sort(key.view(-1), stable=True).indices.view(B, m)


def pair_up(order: torch.Tensor, flip_right: bool, sort_back: bool) -> Tuple[torch.Tensor, torch.Tensor]:
    """Flat positions (left, right), each (B, m/2), of one round's pairs, from the ranking order.

    The top m/2 in rank order are the left members; the bottom m/2 (reversed with flip_right: best
    with worst) their partners. With sort_back the pairs are put in ascending position of the left
    member: positions are flat (rows apart), so one flat sort does every row at once.
    """
    B, m = order.shape
    half = m // 2
    left, right = order[:, :half], order[:, half:]
    if flip_right:
        right = right.flip(1)
    if sort_back:
        left, perm = torch.sort(left.reshape(-1))  # distinct values: stability is moot
        right = right.reshape(-1).index_select(0, perm)
        left, right = left.view(B, half), right.view(B, half)
    return left, right


def gather_weighted_sum(
    x: torch.Tensor, idx: torch.Tensor, w: torch.Tensor, assume_partition: bool = False
) -> torch.Tensor:
    """Phase 2: y[b, j] = sum_m w[b, j, m] * x[b, idx[b, j, m]]; idx -1 contributes nothing.

    x (B, n, D), idx (B, k, M) long, w (B, k, M) -> y (B, k, D) in x.dtype. Differentiable w.r.t.
    x and w. bf16/fp16 x is mixed in float32 (this CPU path favours accuracy; the fast half
    precision path is Triton on CUDA). Values at positions whose weight is 0 must be finite
    (0 * inf is NaN), which holds for any finite padding garbage.

    assume_partition=True promises that each row in [0, n) appears at most once per batch item in
    idx (true for ``tournament`` output): the backward is then a permutation (see
    _PartitionedBagSum), about 10% faster than embedding_bag's general accumulating backward.
    """
    B, n, D = x.shape
    _, k, M = idx.shape
    if n == 0:  # nothing to read: every member is virtual
        return x.new_zeros(B, k, D) + 0 * w.sum()  # keeps w in the graph
    work = x.dtype if x.dtype in (torch.float32, torch.float64) else torch.float32
    virtual = idx < 0
    # x viewed as (B * n, D) rows. A virtual member points at row b * n (a real row of the same
    # item) with weight 0: it adds 0 to y. embedding_bag's own backward accumulates, so that zero
    # cannot overwrite the row's real gradient; _PartitionedBagSum skips virtual members.
    offset = (torch.arange(B, device=x.device) * n).view(B, 1, 1)
    rows = (idx.clamp_min(0) + offset).view(B * k, M)  # (B * k, M)
    weights = w.masked_fill(virtual, 0.0).to(work).reshape(B * k, M)  # (B * k, M)
    x_flat = x.reshape(B * n, D).to(work)  # a view for contiguous float32/64 x: no copy
    if assume_partition:
        y = _PartitionedBagSum.apply(x_flat, rows, weights, virtual.view(B * k, M))
    else:
        y = F.embedding_bag(rows, x_flat, mode="sum", per_sample_weights=weights)  # (B * k, D)
    return y.view(B, k, D).to(x.dtype)


class _PartitionedBagSum(torch.autograd.Function):
    """embedding_bag(mode="sum") whose backward relies on the bags partitioning the rows of x.

    forward: y[g] = sum_m weights[g, m] * x_flat[rows[g, m]]              x_flat (R, D), y (G, D)
    backward: every row r has at most one owner (g, m), so grad_x[r] = weights[g, m] * grad_y[g]
    is one embedding_bag over bags of size 1 (written once, no zero-fill, no accumulation), and
    grad_w[g, m] = <x_flat[rows[g, m]], grad_y[g]>. Virtual members (weight 0 placeholders that
    point at some real row) own no row: they are routed to a spare slot.
    """

    @staticmethod
    def forward(ctx, x_flat, rows, weights, virtual):
        ctx.save_for_backward(x_flat, rows, weights, virtual)
        return F.embedding_bag(rows, x_flat, mode="sum", per_sample_weights=weights)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_y):
        x_flat, rows, weights, virtual = ctx.saved_tensors
        R = x_flat.shape[0]
        G, M = rows.shape
        grad_y = grad_y.contiguous()  # (G, D)
        grad_x = grad_w = None
        if ctx.needs_input_grad[0]:
            # Owner of every row: bag id and weight. Virtual members all land in the extra slot R;
            # a row nobody owns keeps weight 0, so its gradient row is 0.
            slot = rows.masked_fill(virtual, R).view(-1)  # (G * M,)
            bag = torch.arange(G, device=rows.device).repeat_interleave(M)  # (G * M,)
            owner = torch.zeros(R + 1, dtype=torch.long, device=rows.device)
            owner.index_put_((slot,), bag)
            owner_w = weights.new_zeros(R + 1).index_put_((slot,), weights.reshape(-1))
            grad_x = F.embedding_bag(
                owner[:R, None], grad_y, mode="sum", per_sample_weights=owner_w[:R, None]
            )  # (R, D)
        if ctx.needs_input_grad[2]:
            # Virtual members get a nonzero dot with their placeholder row here; their weights
            # were masked to 0 before this function, and that masked_fill zeroes their gradient.
            grad_w = _member_dots(x_flat, rows, grad_y)  # (G, M)
        return grad_x, None, grad_w, None


def _member_dots(x_flat: torch.Tensor, rows: torch.Tensor, grad_y: torch.Tensor) -> torch.Tensor:
    """(G, M) dots <x_flat[rows[g, m]], grad_y[g]>, reading each member row of x once.

    ATen's per-sample-weights backward of embedding_bag computes exactly this without gathering
    the rows; it is an internal op, so a gather + bmm fallback keeps this working without it.
    """
    G, M = rows.shape
    op = getattr(torch.ops.aten, "_embedding_bag_per_sample_weights_backward", None)
    if op is not None:
        offsets = torch.arange(0, G * M, M, device=rows.device)  # (G,) start of each bag
        offset2bag = torch.arange(G, device=rows.device).repeat_interleave(M)  # (G * M,)
        return op(grad_y, x_flat, rows.reshape(-1), offsets, offset2bag, 0, -1).view(G, M)
    members = x_flat.index_select(0, rows.reshape(-1)).view(G, M, -1)  # (G, M, D)
    return torch.bmm(members, grad_y.unsqueeze(-1)).squeeze(-1)

