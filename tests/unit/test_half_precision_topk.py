"""Half precision in the top-k pooler and operator: scores and pair weights never overflow.

The pooler squashes its logits with a sigmoid in float32 (scores in [1e-5, 1 + 1e-5]) and the top-k
computes base**s and the pair softmax in float32 whatever the input dtype, so neither overflows
(fp16 tops out at 65504: 1e5**1 would already be inf). The whole model in half precision and
fairseq-train --bf16 are in tests/integration/test_half_precision.py.
"""
import math

import pytest
import torch

from deep_pyramidion.config import PyramidionConfig
from deep_pyramidion.modules.poolers import build_pooler
from deep_pyramidion.modules.poolers.topk import SCORE_EPS
from deep_pyramidion.topk import successive_halving_topk
from deep_pyramidion.topk import torch_impl

HALF = [torch.bfloat16, torch.float16]
EPS = {torch.bfloat16: 2.0 ** -8, torch.float16: 2.0 ** -11}
IMPLS = ["reference", "torch"]


def topk_pooler(base=20.0):
    config = PyramidionConfig(encoder_pooling_arch="linear", topk_softmax_base=base, flip_right=1,
                              sort_back=1, topk_impl="auto",
                              enc_layers_and_token_width="{0: 16}").validate()
    torch.manual_seed(0)
    return build_pooler("topk", 64, 16, config)


@pytest.mark.parametrize("dtype", HALF)
def test_pooler_scores_are_float32_and_bounded_for_huge_activations(dtype):
    """fp16 logits of large activations overflow to +-inf (the matmul accumulates in float32 and
    rounds at the end); the float32 sigmoid still gives bounded scores. bf16 has float32's range,
    so its logits stay finite; the scores are float32 either way."""
    pooler = topk_pooler().to(dtype)
    with torch.no_grad():
        pooler.scorer.net.weight.mul_(50.0)
    g = torch.Generator().manual_seed(1)
    big = 6e4 if dtype == torch.float16 else 1e4
    x = (torch.randn(3, 100, 64, generator=g) * big).clamp(-big, big).to(dtype).requires_grad_()
    mask = torch.zeros(3, 100, dtype=torch.bool)
    mask[1, 70:] = True
    mask[2, 5:] = True  # shorter than the width
    logits = pooler.scorer(x)
    assert not torch.isnan(logits).any()
    if dtype == torch.float16:
        assert torch.isinf(logits).any()  # the case the float32 sigmoid is there for
    scores = pooler.score(x)
    assert scores.dtype == torch.float32
    assert torch.isfinite(scores).all()
    assert (scores >= SCORE_EPS).all() and (scores <= 1 + SCORE_EPS).all()
    y, y_mask, _ = pooler(x, mask)
    assert y.dtype == dtype and y.shape == (3, 16, 64)
    assert torch.isfinite(y[~y_mask]).all()
    assert (~y_mask).sum(1).tolist() == [16, 16, 5]
    (y.float() / big).sum().backward()
    assert torch.isfinite(x.grad).all()
    assert all(torch.isfinite(p.grad).all() for p in pooler.parameters())


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("dtype", HALF)
def test_pair_weights_are_computed_in_float32(dtype, impl):
    """base = 1e5: base**s is up to 1e5 (inf in fp16) and the pair softmax needs its ratio. Equal
    inputs in half and in float32 give the same selection and weights; outputs differ only by
    the final rounding to the half dtype."""
    g = torch.Generator().manual_seed(2)
    x = torch.randn(2, 40, 8, generator=g).to(dtype)
    scores = torch.sigmoid(torch.randn(2, 40, generator=g) * 3).to(dtype) + 1e-3
    mask = torch.zeros(2, 40, dtype=torch.bool)
    mask[1, 31:] = True
    base = 1e5
    assert math.isinf(torch.tensor(base, dtype=torch.float16).item())
    idx_h, w_h, s_h, m_h = torch_impl.tournament(scores, 5, mask, base)
    idx_f, w_f, s_f, m_f = torch_impl.tournament(scores.float(), 5, mask, base)
    assert w_h.dtype == torch.float32 and torch.isfinite(w_h).all()
    assert torch.equal(idx_h, idx_f) and torch.equal(w_h, w_f) and torch.equal(m_h, m_f)
    assert s_h.dtype == dtype and torch.equal(s_h, s_f.to(dtype))

    y, ys, ym = successive_halving_topk(x, scores, 5, mask=mask, base=base, impl=impl)
    y32, ys32, ym32 = successive_halving_topk(x.float(), scores.float(), 5, mask=mask, base=base,
                                              impl=impl)
    assert y.dtype == dtype and ys.dtype == dtype
    assert torch.isfinite(y).all() and torch.isfinite(ys).all()
    assert torch.equal(ym, ym32)
    torch.testing.assert_close(y.float(), y32, rtol=EPS[dtype], atol=EPS[dtype])
    torch.testing.assert_close(ys.float(), ys32, rtol=EPS[dtype], atol=0)


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("dtype", HALF)
@pytest.mark.parametrize("n, k", [(64, 16), (100, 7), (33, 32), (8, 8), (5, 9)])
def test_half_inputs_match_float32_within_rounding(dtype, impl, n, k):
    """Float32 inputs rounded to the half dtype give the float32 result within the rounding of x.

    Scores are multiples of 1/128 (exact in bf16 and fp16) so rounding cannot reorder them; x loses
    at most eps*|x| per element and the outputs are convex combinations of x."""
    g = torch.Generator().manual_seed(n * 100 + k)
    x = torch.randn(3, n, 32, generator=g)
    scores = (torch.randperm(3 * n, generator=g).view(3, n) % 120 + 4).float() / 128
    mask = torch.rand(3, n, generator=g) < 0.2
    mask[2] = True  # an all-padding row
    x.requires_grad_()
    xh = x.detach().to(dtype).requires_grad_()
    sh = scores.to(dtype).requires_grad_()
    s32 = scores.clone().requires_grad_()
    assert torch.equal(sh.float(), scores)
    y, ys, ym = successive_halving_topk(xh, sh, k, mask=mask, impl=impl)
    y32, ys32, ym32 = successive_halving_topk(x, s32, k, mask=mask, impl=impl)
    assert torch.equal(ym, ym32)
    tol = 2 * EPS[dtype] * x.abs().max().item()
    torch.testing.assert_close(y.float(), y32, rtol=0, atol=tol)
    torch.testing.assert_close(ys.float(), ys32, rtol=EPS[dtype], atol=0)
    weights = torch.randn(y.shape, generator=g)
    (y.float() * weights).sum().backward()
    (y32 * weights).sum().backward()
    assert torch.isfinite(xh.grad.float()).all()
    torch.testing.assert_close(xh.grad.float(), x.grad, rtol=4 * EPS[dtype], atol=4 * EPS[dtype])
    if k >= n:  # the identity: scores play no part
        return
    assert torch.isfinite(sh.grad.float()).all()
    scale = max(1.0, s32.grad.abs().max().item())
    torch.testing.assert_close(sh.grad.float(), s32.grad, rtol=0, atol=16 * EPS[dtype] * scale)
