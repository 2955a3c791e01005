"""The Triton phase 2 of the successive-halving top-k (deep_pyramidion/topk/triton_impl.py) on CUDA:
real kernels on large shapes and in half precision against the reference implementation (skipped
without a GPU and triton). Under Triton's CPU interpreter: tests/integration/test_topk_triton_interpreter.py.

Shape legend: B batch, n input length, k output width, D features.
"""
import importlib.util

import pytest
import torch

from deep_pyramidion.topk import successive_halving_topk

HAS_TRITON = importlib.util.find_spec("triton") is not None
gpu = pytest.mark.skipif(not (HAS_TRITON and torch.cuda.is_available()), reason="needs CUDA and triton")


def _cuda_inputs(B, n, D, dtype, seed=0):
    g = torch.Generator(device="cuda").manual_seed(seed)
    x = torch.randn(B, n, D, generator=g, device="cuda").to(dtype)
    s = torch.sigmoid(torch.randn(B, n, generator=g, device="cuda")) + 1e-5
    lengths = torch.randint(n // 4, n + 1, (B,), generator=g, device="cuda")
    mask = torch.arange(n, device="cuda").view(1, n) >= lengths.view(B, 1)
    return x, s, mask


def _fwd_bwd(impl, x, s, k, mask, gy):
    x = x.clone().requires_grad_()
    s = s.clone().requires_grad_()
    y, ys, ym = successive_halving_topk(x, s, k, mask, impl=impl)
    assert y.dtype == x.dtype
    y.backward(gy.to(y.dtype))
    return y.detach().float(), ys.detach(), ym, x.grad.float(), s.grad


# B, n, k, D: the paper's shapes (8192 -> 512, D = 512 and 1024) and awkward ones (k not a power
# of two, several D blocks, k > n, a member loop longer than one block)
SHAPES = [(16, 8192, 512, 512), (16, 8192, 512, 1024), (3, 1000, 37, 130), (2, 13, 3, 40),
          (1, 5, 9, 3), (2, 4096, 64, 96), (4, 2048, 256, 256)]
TOLERANCE = {torch.float32: 1e-4, torch.bfloat16: 3e-2, torch.float16: 1e-2}


@pytest.mark.gpu
@gpu
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16],
                         ids=["float32", "bfloat16", "float16"])
@pytest.mark.parametrize("B, n, k, D", SHAPES)
def test_triton_matches_reference_and_torch_forward_and_backward(B, n, k, D, dtype):
    x, s, mask = _cuda_inputs(B, n, D, dtype, seed=n + D)
    gy = torch.randn(B, k, D, device="cuda").to(dtype)
    ref = _fwd_bwd("reference", x.float(), s, k, mask, gy.float())   # the specification, fp32
    tri = _fwd_bwd("triton", x, s, k, mask, gy)
    via_torch = _fwd_bwd("torch", x, s, k, mask, gy)
    tol = TOLERANCE[dtype]
    assert torch.equal(ref[2], tri[2]) and torch.equal(via_torch[2], tri[2])
    for name, a, b, c in zip(("y", "y_scores", "grad x", "grad scores"), ref[:2] + ref[3:],
                             tri[:2] + tri[3:], via_torch[:2] + via_torch[3:]):
        torch.testing.assert_close(b, a, rtol=tol, atol=tol, msg=lambda m: f"{name} vs reference: {m}")
        torch.testing.assert_close(b, c, rtol=tol, atol=tol, msg=lambda m: f"{name} vs torch: {m}")


@pytest.mark.gpu
@gpu
def test_auto_picks_triton_on_cuda(monkeypatch):
    import deep_pyramidion.topk as topk

    monkeypatch.delenv(topk.ENV_VAR, raising=False)
    assert topk._resolve_impl("auto", torch.device("cuda")) == "triton"
