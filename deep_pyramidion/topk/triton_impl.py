"""Phase 2 of the successive-halving top-k as Triton kernels (forward and backward).

Shape legend: B batch, n input length, k output width, M = 2**d members per output, D features.

    y[b, j] = sum_m w[b, j, m] * x[b, idx[b, j, m]]           (idx = -1: virtual member, skipped)

Phase 1 (``torch_impl.tournament``) produces idx and w; only this step touches D-sized data.
- forward: one program per (output j, block of D columns); it loops over the M members, reads
  each member row of x once, accumulates in float32 (float64 for float64 x), writes y once.
- backward: one program per (output j, block of members); it loops over D. The groups partition
  the rows of x, so grad_x is a permutation write: row idx[b, j, m] gets w[b, j, m] * grad_y[b, j]
  from exactly one program (no atomics), and grad_w[b, j, m] = <x[b, idx[b, j, m]], grad_y[b, j]>.
  Rows that no member owns (padding sentinels aside, this cannot happen for tournament output)
  must be zero, so grad_x starts zeroed unless the caller vouches for a partition.

Inputs may be float32, bfloat16 or float16 (and float64, accumulated in float64). CPU tensors work
only under Triton's interpreter (TRITON_INTERPRET=1 set before triton is imported); the dispatcher
in ``__init__`` decides when to use this module and falls back to the torch path otherwise.
"""
from __future__ import annotations

import torch

try:  # Triton is optional (the `cuda` extra); without it the torch path is used.
    import triton
    import triton.language as tl

    HAS_TRITON = True
except Exception:  # ImportError, or a broken install raising something else at import
    triton = None
    tl = None
    HAS_TRITON = False


if HAS_TRITON:

    @triton.jit
    def _gws_forward_kernel(
        x_ptr,  # (B * n, D) contiguous
        idx_ptr,  # (B * k, M) int64, -1 = virtual member
        w_ptr,  # (B * k, M) accumulation dtype
        y_ptr,  # (B * k, D) x's dtype
        n,
        k,
        M,
        D,
        BLOCK_M: tl.constexpr,
        BLOCK_D: tl.constexpr,
        ACC: tl.constexpr,
    ):
        g = tl.program_id(0)  # output row b * k + j
        b = g // k
        offs_d = tl.program_id(1) * BLOCK_D + tl.arange(0, BLOCK_D)
        d_ok = offs_d < D
        acc = tl.zeros([BLOCK_D], dtype=ACC)
        for m0 in range(0, M, BLOCK_M):
            offs_m = m0 + tl.arange(0, BLOCK_M)
            m_ok = offs_m < M
            i = tl.load(idx_ptr + g * M + offs_m, mask=m_ok, other=-1)
            wm = tl.load(w_ptr + g * M + offs_m, mask=m_ok, other=0.0)
            live = i >= 0
            rows = (b * n + i).to(tl.int64)  # int64: B * n * D can exceed 2**31
            xt = tl.load(
                x_ptr + rows[:, None] * D + offs_d[None, :],
                mask=live[:, None] & d_ok[None, :],
                other=0.0,
            ).to(ACC)
            acc += tl.sum(xt * wm[:, None], axis=0)
        tl.store(y_ptr + g.to(tl.int64) * D + offs_d, acc.to(y_ptr.dtype.element_ty), mask=d_ok)

    @triton.jit
    def _gws_backward_kernel(
        x_ptr,  # (B * n, D)
        idx_ptr,  # (B * k, M) int64
        w_ptr,  # (B * k, M) accumulation dtype
        gy_ptr,  # (B * k, D) contiguous
        gx_ptr,  # (B * n, D) x's dtype
        gw_ptr,  # (B * k, M) accumulation dtype
        n,
        k,
        M,
        D,
        BLOCK_M: tl.constexpr,
        BLOCK_D: tl.constexpr,
        ACC: tl.constexpr,
    ):
        g = tl.program_id(0)
        b = g // k
        offs_m = tl.program_id(1) * BLOCK_M + tl.arange(0, BLOCK_M)
        m_ok = offs_m < M
        i = tl.load(idx_ptr + g * M + offs_m, mask=m_ok, other=-1)
        wm = tl.load(w_ptr + g * M + offs_m, mask=m_ok, other=0.0)
        live = (i >= 0) & m_ok
        rows = (b * n + i).to(tl.int64)
        gw = tl.zeros([BLOCK_M], dtype=ACC)
        for d0 in range(0, D, BLOCK_D):
            offs_d = d0 + tl.arange(0, BLOCK_D)
            d_ok = offs_d < D
            gy = tl.load(gy_ptr + g.to(tl.int64) * D + offs_d, mask=d_ok, other=0.0).to(ACC)
            tile = live[:, None] & d_ok[None, :]
            ptrs = rows[:, None] * D + offs_d[None, :]
            xt = tl.load(x_ptr + ptrs, mask=tile, other=0.0).to(ACC)
            gw += tl.sum(xt * gy[None, :], axis=1)
            gx = wm[:, None] * gy[None, :]
            tl.store(gx_ptr + ptrs, gx.to(gx_ptr.dtype.element_ty), mask=tile)
        tl.store(gw_ptr + g * M + offs_m, gw, mask=m_ok)


def _next_pow2(v: int) -> int:
    return 1 << max(0, (v - 1).bit_length())


def _blocks(M: int, D: int):
    # Tiles of at most 16 x 128 elements keep the register footprint small for 4 warps; untuned
    # (no GPU was available when this was written): see BENCHMARKS.md.
    return min(16, max(2, _next_pow2(M))), min(128, max(16, _next_pow2(D)))


def _acc_dtype(x_dtype: torch.dtype) -> torch.dtype:
    return torch.float64 if x_dtype == torch.float64 else torch.float32


def _tl_dtype(dtype: torch.dtype):
    return tl.float64 if dtype == torch.float64 else tl.float32


class _GatherWeightedSum(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, idx, w, assume_partition):
        B, n, D = x.shape
        _, k, M = idx.shape
        acc = _acc_dtype(x.dtype)
        x_c = x.contiguous()  # (B, n, D): addressed as rows b * n + i
        idx_c = idx.contiguous()
        w_c = w.to(acc).contiguous()
        y = torch.empty(B, k, D, dtype=x.dtype, device=x.device)
        block_m, block_d = _blocks(M, D)
        grid = (B * k, triton.cdiv(D, block_d))
        _gws_forward_kernel[grid](
            x_c, idx_c, w_c, y, n, k, M, D, BLOCK_M=block_m, BLOCK_D=block_d, ACC=_tl_dtype(acc)
        )
        ctx.save_for_backward(x_c, idx_c, w_c)
        ctx.assume_partition = assume_partition
        ctx.w_dtype = w.dtype
        return y

    @staticmethod
    def backward(ctx, grad_y):
        x_c, idx_c, w_c = ctx.saved_tensors
        B, n, D = x_c.shape
        _, k, M = idx_c.shape
        # A partition writes every row exactly once; otherwise unowned rows must read as zero.
        alloc = torch.empty_like if ctx.assume_partition else torch.zeros_like
        grad_x = alloc(x_c)
        grad_w = torch.empty_like(w_c)
        block_m, block_d = _blocks(M, D)
        grid = (B * k, triton.cdiv(M, block_m))
        _gws_backward_kernel[grid](
            x_c,
            idx_c,
            w_c,
            grad_y.contiguous(),
            grad_x,
            grad_w,
            n,
            k,
            M,
            D,
            BLOCK_M=block_m,
            BLOCK_D=block_d,
            ACC=_tl_dtype(w_c.dtype),
        )
        return grad_x, None, grad_w.to(ctx.w_dtype), None


def gather_weighted_sum(
    x: torch.Tensor, idx: torch.Tensor, w: torch.Tensor, assume_partition: bool = False
) -> torch.Tensor:
    """Phase 2 with Triton: x (B, n, D), idx (B, k, M) long (-1 = virtual), w (B, k, M) -> (B, k, D).

    assume_partition=True promises that every row in [0, n) of each batch item appears exactly
    once in idx (true for ``tournament`` output); grad_x is then not pre-zeroed.
    """
    if not HAS_TRITON:
        raise RuntimeError("triton is not installed; use the torch implementation")
    if x.shape[1] == 0:
        return x.new_zeros(x.shape[0], idx.shape[1], x.shape[2]) + 0 * w.sum()
    return _GatherWeightedSum.apply(x, idx, w, assume_partition)
