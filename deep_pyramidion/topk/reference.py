"""Reference successive-halving top-k: the executable specification (design.md section 3).

Shape legend: B batch, n input length, k output width, d rounds (k * 2**d >= n), D features.

Deliberately plain: one batch item at a time, one round at a time, on the actual (m, D) tensors,
differentiable through ordinary torch autograd. This is also the way the paper's released code
computes the operator, so the benchmark uses it as the baseline. Do not optimise it; the fast
paths (torch_impl, triton_impl) are tested against it.

One round on m elements (x_i, s_i, padding flag):
  1. stable sort by score descending, padding last (in position order);
  2. left = the top m/2 in that order; right = the bottom m/2, reversed when flip_right;
  3. pair left[j] with right[j]: a = softmax([base**s_l, base**s_r]) (padding: logit -inf),
     new x = a0 x_l + a1 x_r, new s = a0 s_l + a1 s_r, new padding flag = both padding;
  4. with sort_back the m/2 new elements are put in ascending order of their left member's position.

Inputs are assumed validated (``deep_pyramidion.topk.common.check_inputs``); call it through
``successive_halving_topk(..., impl="reference")``.
"""
from __future__ import annotations

from typing import Optional, Tuple

import torch

from .common import compute_dtype, num_rounds, pair_weights


def successive_halving_topk_reference(
    x: torch.Tensor,  # (B, n, D)
    scores: torch.Tensor,  # (B, n)
    k: int,
    mask: Optional[torch.Tensor] = None,  # (B, n) bool, True = padding
    base: float = 20.0,
    flip_right: bool = True,
    sort_back: bool = True,
) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Returns y (B, k, D) in x.dtype, y_scores (B, k) in scores.dtype, y_mask (B, k) bool."""
    B, n, D = x.shape
    d = num_rounds(n, k)
    n_pad = k << d  # n padded up to k * 2**d with padding elements
    s_dtype = compute_dtype(scores.dtype)
    x_dtype = compute_dtype(x.dtype)  # bf16/fp16 x is mixed in float32, cast back at the end
    if mask is None:
        mask = torch.zeros(B, n, dtype=torch.bool, device=x.device)

    ys, ys_scores, ys_mask = [], [], []
    for b in range(B):
        xs = x[b].to(x_dtype)  # (n, D)
        ss = scores[b].to(s_dtype)  # (n,)
        ms = mask[b]  # (n,)
        if n_pad > n:  # padding elements: zero vector, score 0, flagged
            extra = n_pad - n
            xs = torch.cat([xs, xs.new_zeros(extra, D)])
            ss = torch.cat([ss, ss.new_zeros(extra)])
            ms = torch.cat([ms, ms.new_ones(extra)])
        ss = ss.masked_fill(ms, 0.0)  # stored padding scores never matter
        if d == 0:
            # k >= n: identity; padding rows are zeroed so stored padding values never leak.
            xs = xs.masked_fill(ms[:, None], 0.0)

        for _ in range(d):
            m = xs.shape[0]
            half = m // 2
            key = ss.masked_fill(ms, float("-inf"))  # padding sorts last
            order = torch.sort(key, descending=True, stable=True).indices  # (m,)
            left, right = order[:half], order[half:]
            if flip_right:
                right = right.flip(0)  # best paired with worst
            if sort_back:
                left, perm = torch.sort(left)  # ascending position of the left member
                right = right[perm]
            a0, a1 = pair_weights(ss[left], ss[right], ms[left], ms[right], base)  # (half,)
            xs = a0.to(x_dtype)[:, None] * xs[left] + a1.to(x_dtype)[:, None] * xs[right]  # (half, D)
            ss = a0 * ss[left] + a1 * ss[right]
            ms = ms[left] & ms[right]

        ys.append(xs)
        ys_scores.append(ss)
        ys_mask.append(ms)

    y = torch.stack(ys).to(x.dtype)  # (B, k, D)
    y_scores = torch.stack(ys_scores).to(scores.dtype)  # (B, k)
    y_mask = torch.stack(ys_mask)  # (B, k)
    return y, y_scores, y_mask
