"""The Triton phase 2 of the successive-halving top-k (deep_pyramidion/topk/triton_impl.py) under
Triton's interpreter, on the CPU.

Shape legend: B batch, n input length, k output width, D features, M members per output.

Triton's interpreter runs the kernels on CPU tensors when TRITON_INTERPRET=1 is set before triton
is imported, so the check runs in a subprocess with that environment. The real kernels on CUDA
(large shapes, half precision): tests/unit/test_topk_triton_cuda.py.
"""
import importlib.util
import os
import subprocess
import sys
import textwrap

import pytest

from tests.support.paths import REPO

HAS_TRITON = importlib.util.find_spec("triton") is not None
needs_triton = pytest.mark.skipif(not HAS_TRITON, reason="triton is not installed (pip install triton)")

INTERPRETER_CHECK = textwrap.dedent(
    r"""
    import sys
    import torch
    import deep_pyramidion.topk as topk
    from deep_pyramidion.topk import successive_halving_topk, triton_impl

    assert triton_impl.HAS_TRITON, "triton did not import"
    assert topk._resolve_impl("triton", torch.device("cpu")) == "triton", "triton path not taken"
    failures = []

    def check(name, got, want, tol):
        if got.shape != want.shape or not torch.allclose(got, want, rtol=tol, atol=tol):
            err = (got - want).abs().max().item() if got.shape == want.shape else "shape"
            failures.append(f"{name}: max abs error {err}")

    def run(impl, x, s, k, mask):
        x = x.clone().requires_grad_()
        s = s.clone().requires_grad_()
        y, ys, ym = successive_halving_topk(x, s, k, mask, impl=impl)
        weight = torch.linspace(-1, 1, y.numel()).view_as(y)
        ((y * weight).sum() + (ys * ys).sum()).backward()
        return y.detach(), ys.detach(), ym, x.grad, s.grad

    g = torch.Generator().manual_seed(0)
    # B, n, k, D, padding: covers several D blocks (D > 128), a member loop longer than one block
    # (M = 64 > 16), non-power-of-two ratios (virtual members), k > n and padded rows.
    for B, n, k, D, pad in [(2, 16, 4, 5, False), (2, 13, 3, 40, True), (1, 64, 1, 2, False),
                            (2, 24, 3, 130, True), (2, 5, 9, 3, True)]:
        x = torch.randn(B, n, D, generator=g)
        s = torch.sigmoid(torch.randn(B, n, generator=g)) + 1e-5
        mask = None
        if pad:
            mask = torch.zeros(B, n, dtype=torch.bool)
            mask[0, n // 2:] = True
            mask[-1, 1] = True
        ref = run("reference", x, s, k, mask)
        tri = run("triton", x, s, k, mask)
        for name, a, b in zip(["y", "y_scores", "y_mask", "grad_x", "grad_scores"], ref, tri):
            if a.dtype == torch.bool:
                if not torch.equal(a, b):
                    failures.append(f"{name} differs for {(B, n, k, D, pad)}")
            else:
                check(f"{name} {(B, n, k, D, pad)}", b, a, 1e-4)

    # Without assume_partition, rows nobody owns get a zero gradient (grad_x is pre-zeroed);
    # virtual members (-1) add nothing and get grad_w 0.
    x = torch.randn(1, 5, 3, generator=g, requires_grad=True)
    idx = torch.tensor([[[0, -1], [3, 1]]])  # rows 2 and 4 belong to no group
    w = torch.rand(1, 2, 2, generator=g, requires_grad=True)
    y = triton_impl.gather_weighted_sum(x, idx, w)
    want = torch.stack([w[0, 0, 0] * x[0, 0], w[0, 1, 0] * x[0, 3] + w[0, 1, 1] * x[0, 1]])[None]
    check("y with sentinels", y, want, 1e-6)
    y.sum().backward()
    if not (torch.all(x.grad[0, 2] == 0) and torch.all(x.grad[0, 4] == 0)):
        failures.append("rows owned by no group got a nonzero gradient")
    if w.grad[0, 0, 1] != 0:
        failures.append("a virtual member got a nonzero weight gradient")
    check("grad_x row 3", x.grad[0, 3], w[0, 1, 0].detach().expand(3), 1e-6)

    print("\n".join(failures) or "ok")
    sys.exit(1 if failures else 0)
    """
)


@needs_triton
def test_triton_interpreter_matches_reference_on_cpu():
    env = dict(os.environ, TRITON_INTERPRET="1")
    env["PYTHONPATH"] = os.pathsep.join(p for p in [str(REPO), env.get("PYTHONPATH", "")] if p)
    env.pop("DEEP_PYRAMIDION_TOPK_IMPL", None)
    proc = subprocess.run(
        [sys.executable, "-c", INTERPRETER_CHECK], cwd=REPO, env=env, capture_output=True, text=True,
        timeout=600,
    )
    assert proc.returncode == 0, f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr[-4000:]}"
    assert proc.stdout.strip().endswith("ok")
