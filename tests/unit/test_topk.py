"""Tests of the successive-halving top-k operator (deep_pyramidion/topk, design.md section 3).

Shape legend: B batch, n input length, k output width, D features, M members per output.

The reference (round by round) is checked against hand computations from the rules; the torch
path is checked against the reference. Triton has its own file (test_topk_triton.py).
"""
import logging
import math

import pytest
import torch

import deep_pyramidion.topk as topk_pkg
from deep_pyramidion.topk import reference, successive_halving_topk, torch_impl

IMPLS = ["reference", "torch"]


def make_inputs(B, n, D, dtype=torch.float64, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(B, n, D, generator=g, dtype=dtype)
    scores = torch.sigmoid(torch.randn(B, n, generator=g, dtype=dtype)) + 1e-5  # as in the model
    return x, scores


def make_mask(B, n, style, seed=0):
    """(B, n) bool padding mask. "suffix": a random length per row (one row all padding when B > 1,
    one row shorter than most k); "holes": padding at random positions, not only at the end."""
    g = torch.Generator().manual_seed(seed + 1)
    if style == "none":
        return None
    if style == "suffix":
        lengths = torch.randint(0, n + 1, (B,), generator=g)
        if B > 1:
            lengths[0] = 0  # an all-padding row
            lengths[1] = min(n, 2)  # a document shorter than k
        return torch.arange(n).view(1, n) >= lengths.view(B, 1)
    if style == "holes":
        return torch.rand(B, n, generator=g) < 0.3
    raise AssertionError(style)


def run(impl, x, scores, k, mask=None, **kw):
    return successive_halving_topk(x, scores, k, mask, impl=impl, **kw)


def grads(impl, x, scores, k, mask=None, **kw):
    """Outputs and gradients of a loss that touches y and y_scores."""
    x = x.clone().requires_grad_()
    scores = scores.clone().requires_grad_()
    y, ys, ym = run(impl, x, scores, k, mask, **kw)
    weight = torch.linspace(-1, 1, y.numel(), dtype=y.dtype).view_as(y)
    (y * weight).sum().add((ys * ys).sum()).backward()
    return y.detach(), ys.detach(), ym, x.grad, scores.grad


# ----------------------------------------------------------------------------- hand computations
def softmax2(p, q):
    return math.exp(p) / (math.exp(p) + math.exp(q)), math.exp(q) / (math.exp(p) + math.exp(q))


def merge(left, right, base):
    """One pair by the rules: left/right are (x as list, score). Returns the new element."""
    (xl, sl), (xr, sr) = left, right
    a0, a1 = softmax2(base**sl, base**sr)
    return [a0 * u + a1 * v for u, v in zip(xl, xr)], a0 * sl + a1 * sr


def test_hand_n4_k1():
    # Round 1: scores sorted desc: pos 1 (.9), 2 (.5), 0 (.2), 3 (.1). left = [1, 2], right =
    # [0, 3] reversed = [3, 0]: pairs (1, 3), (2, 0); sort_back keeps [1, 2]. Round 2 on two
    # elements: the one with the higher score is left.
    xs = [[1.0, -1.0], [10.0, 2.0], [100.0, 3.0], [1000.0, -4.0]]
    s = [0.2, 0.9, 0.5, 0.1]
    e = [(xs[i], s[i]) for i in range(4)]
    e13 = merge(e[1], e[3], 20.0)
    e20 = merge(e[2], e[0], 20.0)
    assert e13[1] > e20[1]  # by hand: .9 dominates its pair, .5 dominates its pair
    y_exp, s_exp = merge(e13, e20, 20.0)
    x = torch.tensor([xs], dtype=torch.float64)
    scores = torch.tensor([s], dtype=torch.float64)
    for impl in IMPLS:
        y, ys, ym = run(impl, x, scores, 1)
        torch.testing.assert_close(y, torch.tensor([[y_exp]], dtype=torch.float64), rtol=1e-12, atol=0)
        torch.testing.assert_close(ys, torch.tensor([[s_exp]], dtype=torch.float64), rtol=1e-12, atol=0)
        assert ym.tolist() == [[False]]


# n = 8, k = 2, base 2 (weights far from 0/1, so a wrong pairing shows). Scores by position:
S8 = [0.1, 0.8, 0.3, 0.9, 0.5, 0.2, 0.7, 0.4]
# Round 1 sorted desc: 3, 1, 6, 4 | 7, 2, 5, 0. left = [3, 1, 6, 4]; right = [7, 2, 5, 0]
# (flip: reversed to [0, 5, 2, 7]). With sort_back the pairs follow left positions 1, 3, 4, 6.
ROUND1 = {
    (True, True): [(1, 5), (3, 0), (4, 7), (6, 2)],
    (True, False): [(3, 0), (1, 5), (6, 2), (4, 7)],
    (False, True): [(1, 2), (3, 7), (4, 0), (6, 5)],
    (False, False): [(3, 7), (1, 2), (6, 5), (4, 0)],
}
# Round 2 on the four new elements E0..E3 (in the order above). Their scores, computed by hand:
#   flip, sort_back:     .586 .651 .452 .539 -> ranking E1 E0 E3 E2: left [E1, E0], right [E3, E2]
#                        reversed [E2, E3]: (E1, E2), (E0, E3); sort_back -> (E0, E3), (E1, E2)
#   flip, no sort_back:  .651 .586 .539 .452 -> E0 E1 E2 E3: (E0, E3), (E1, E2)
#   no flip, sort_back:  .612 .717 .334 .508 -> E1 E0 E3 E2: (E1, E3), (E0, E2); sorted back
#                        by left position -> (E0, E2), (E1, E3)
#   no flip, no sort_back: .717 .612 .508 .334 -> E0 E1 E2 E3: (E0, E2), (E1, E3)
ROUND2 = {
    (True, True): ([1, 0, 3, 2], [(0, 3), (1, 2)]),
    (True, False): ([0, 1, 2, 3], [(0, 3), (1, 2)]),
    (False, True): ([1, 0, 3, 2], [(0, 2), (1, 3)]),
    (False, False): ([0, 1, 2, 3], [(0, 2), (1, 3)]),
}


@pytest.mark.parametrize("flip_right", [True, False])
@pytest.mark.parametrize("sort_back", [True, False])
def test_hand_n8_k2(flip_right, sort_back):
    base = 2.0
    xs = [[float(i), 1.0 / (i + 1)] for i in range(8)]
    e = [(xs[i], S8[i]) for i in range(8)]
    new = [merge(e[i], e[j], base) for i, j in ROUND1[(flip_right, sort_back)]]
    ranking, pairs = ROUND2[(flip_right, sort_back)]
    ranked_scores = [new[i][1] for i in ranking]
    assert ranked_scores == sorted(ranked_scores, reverse=True)  # the hand ranking is right
    out = [merge(new[i], new[j], base) for i, j in pairs]

    x = torch.tensor([xs], dtype=torch.float64)
    scores = torch.tensor([S8], dtype=torch.float64)
    for impl in IMPLS:
        y, ys, ym = run(impl, x, scores, 2, base=base, flip_right=flip_right, sort_back=sort_back)
        torch.testing.assert_close(y[0], torch.tensor([o[0] for o in out], dtype=torch.float64))
        torch.testing.assert_close(ys[0], torch.tensor([o[1] for o in out], dtype=torch.float64))
        assert not ym.any()


@pytest.mark.parametrize("impl", IMPLS)
def test_ties_keep_stable_order_one_round(impl):
    # Stable sort of [.5, .7, .5, .5]: 1, 0, 2, 3 -> left [1, 0], right [2, 3] reversed [3, 2]:
    # pairs (1, 3), (0, 2). An unstable order (1, 2, 0, 3) would pair (1, 3), (2, 0) instead.
    x = torch.arange(8, dtype=torch.float64).view(1, 4, 2) ** 2
    scores = torch.tensor([[0.5, 0.7, 0.5, 0.5]], dtype=torch.float64)
    a0, a1 = softmax2(20.0**0.7, 20.0**0.5)
    p13 = a0 * x[0, 1] + a1 * x[0, 3]
    p02 = 0.5 * x[0, 0] + 0.5 * x[0, 2]
    y, _, _ = run(impl, x, scores, 2, sort_back=True)
    torch.testing.assert_close(y[0], torch.stack([p02, p13]))  # by left position: 0, then 1
    y, _, _ = run(impl, x, scores, 2, sort_back=False)
    torch.testing.assert_close(y[0], torch.stack([p13, p02]))  # by left rank


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("flip_right", [True, False])
def test_ties_keep_stable_order_two_rounds(impl, flip_right):
    # All scores equal: every weight is exactly 1/2 and every new score stays exactly .5, so both
    # rounds sort by position. flip: round 1 pairs (0,7) (1,6) (2,5) (3,4), round 2 (E0,E3) (E1,E2).
    # no flip: (0,4) (1,5) (2,6) (3,7), then (E0,E2) (E1,E3).
    g = torch.Generator().manual_seed(3)
    x = torch.randn(1, 8, 3, generator=g, dtype=torch.float64)
    scores = torch.full((1, 8), 0.5, dtype=torch.float64)
    groups = [[0, 7, 3, 4], [1, 6, 2, 5]] if flip_right else [[0, 4, 2, 6], [1, 5, 3, 7]]
    expected = torch.stack([x[0, grp].sum(0) / 4 for grp in groups])
    y, ys, _ = run(impl, x, scores, 2, flip_right=flip_right)
    torch.testing.assert_close(y[0], expected, rtol=1e-14, atol=1e-14)
    assert ys.tolist() == [[0.5, 0.5]]
    # float32 too: exact ties must stay exact ties in the vectorised (radix-key) ordering
    y32, _, _ = run(impl, x.float(), scores.float(), 2, flip_right=flip_right)
    torch.testing.assert_close(y32[0], expected.float())


# ----------------------------------------------------------------------------- torch vs reference
CASES = [
    # B, n, k, mask style
    (3, 16, 4, "none"),
    (3, 16, 4, "suffix"),
    (2, 13, 3, "none"),
    (4, 37, 5, "suffix"),
    (3, 40, 6, "holes"),
    (2, 64, 1, "holes"),
    (4, 100, 7, "suffix"),
    (2, 8, 8, "suffix"),  # k == n
    (3, 5, 9, "holes"),  # k > n
    (2, 1, 1, "none"),  # n == 1
    (2, 1, 4, "suffix"),
]


@pytest.mark.parametrize("B,n,k,style", CASES)
@pytest.mark.parametrize("flip_right,sort_back", [(True, True), (False, True), (True, False), (False, False)])
def test_torch_matches_reference(B, n, k, style, flip_right, sort_back):
    x, scores = make_inputs(B, n, 3, seed=n * 31 + k)
    mask = make_mask(B, n, style, seed=n)
    kw = dict(flip_right=flip_right, sort_back=sort_back)
    ref = grads("reference", x, scores, k, mask, **kw)
    out = grads("torch", x, scores, k, mask, **kw)
    names = ["y", "y_scores", "y_mask", "grad_x", "grad_scores"]
    for name, a, b in zip(names, ref, out):
        assert a.shape == b.shape, name
        if a.dtype == torch.bool:
            assert torch.equal(a, b), name
        else:
            torch.testing.assert_close(b, a, rtol=1e-10, atol=1e-12, msg=name)
    assert ref[0].shape == (B, k, 3) and ref[2].dtype == torch.bool


@pytest.mark.parametrize("B,n,k,style", [(4, 300, 16, "suffix"), (3, 257, 8, "holes"), (2, 96, 3, "none")])
def test_torch_matches_reference_float32(B, n, k, style):
    # float32 takes the integer-key (radix) ordering in the torch path; the reference sorts floats.
    x, scores = make_inputs(B, n, 4, dtype=torch.float32, seed=k)
    mask = make_mask(B, n, style, seed=k)
    ref = grads("reference", x, scores, k, mask)
    out = grads("torch", x, scores, k, mask)
    assert torch.equal(ref[2], out[2])
    for a, b in zip(ref[:2] + ref[3:], out[:2] + out[3:]):
        torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("impl", IMPLS)
def test_non_contiguous_inputs(impl):
    x, scores = make_inputs(3, 20, 4, dtype=torch.float32, seed=2)
    mask = make_mask(3, 20, "holes", seed=2)
    x_nc = x.transpose(0, 1).contiguous().transpose(0, 1)  # same values, other strides
    s_nc = scores.t().contiguous().t()
    m_nc = mask.t().contiguous().t()
    assert not x_nc.is_contiguous() and not s_nc.is_contiguous()
    for a, b in zip(run(impl, x, scores, 3, mask), run(impl, x_nc, s_nc, 3, m_nc)):
        assert torch.equal(a, b)


def test_descending_order_matches_stable_float_sort():
    def in_row(order):  # descending_order returns flat positions b * m + i
        return order - torch.arange(order.shape[0]).view(-1, 1) * order.shape[1]

    g = torch.Generator().manual_seed(0)
    s = torch.randint(-3, 4, (5, 64), generator=g).float() / 2  # many ties, negatives
    s[0, :8] = -0.0  # -0.0 ties with 0.0
    s[1, :8] = 0.0
    s[2] = torch.randn(64, generator=g) * 1e30
    msk = torch.rand(5, 64, generator=g) < 0.25
    expected = torch.sort(s.masked_fill(msk, float("-inf")), dim=1, descending=True, stable=True).indices
    assert torch.equal(in_row(torch_impl.descending_order(s, msk)), expected)
    assert torch.equal(in_row(torch_impl.descending_order(s.double(), msk)), expected)
    # large enough (>= 32768 keys) for PyTorch's radix-sort path: ties must still keep position order
    s = torch.randint(0, 50, (4, 16384), generator=g).float() / 50
    msk = torch.rand(4, 16384, generator=g) < 0.1
    expected = torch.sort(s.masked_fill(msk, float("-inf")), dim=1, descending=True, stable=True).indices
    assert torch.equal(in_row(torch_impl.descending_order(s, msk)), expected)


def test_tournament_groups_partition_the_input():
    B, n, k = 3, 37, 5  # padded to 5 * 8 = 40: 3 virtual members per row
    _, scores = make_inputs(B, n, 1)
    mask = make_mask(B, n, "suffix")
    idx, w, ys, ym = torch_impl.tournament(scores, k, mask)
    assert idx.shape == (B, k, 8) and w.shape == (B, k, 8) and idx.dtype == torch.long
    for b in range(B):
        members = idx[b].flatten()
        real = members[members >= 0].sort().values
        assert torch.equal(real, torch.arange(n))  # every position exactly once
        assert int((members < 0).sum()) == 40 - n
        padded_member = (members < 0) | mask[b][members.clamp_min(0)]
        assert torch.all(w[b].flatten()[padded_member] == 0)  # padding weighs exactly 0
        assert torch.all(w[b].flatten()[~padded_member] > 0)


def test_partitioned_backward_matches_general_backward():
    B, n, k, D = 2, 24, 3, 5
    x, scores = make_inputs(B, n, D)
    idx, w, _, _ = torch_impl.tournament(scores, k, make_mask(B, n, "holes"))
    res = []
    for assume in (True, False):
        xx = x.clone().requires_grad_()
        ww = w.detach().clone().requires_grad_()
        y = torch_impl.gather_weighted_sum(xx, idx, ww, assume_partition=assume)
        (y * torch.linspace(-1, 1, y.numel(), dtype=y.dtype).view_as(y)).sum().backward()
        res.append((y, xx.grad, ww.grad))
    for a, b in zip(*res):
        torch.testing.assert_close(a, b)


@pytest.mark.parametrize("assume_partition", [True, False])
def test_gather_weighted_sum_ignores_virtual_members(assume_partition):
    # idx -1 stands for a row that does not exist (all zeros): whatever its weight, it adds nothing
    # and gets grad_w 0; row 0, which virtual members borrow as a placeholder, keeps its gradient.
    g = torch.Generator().manual_seed(4)
    x = torch.randn(2, 4, 3, generator=g, dtype=torch.float64, requires_grad=True)
    idx = torch.tensor([[[0, -1], [2, 1], [3, -1]], [[1, 3], [2, 0], [-1, -1]]])
    w = torch.rand(2, 3, 2, generator=g, dtype=torch.float64, requires_grad=True)
    y = torch_impl.gather_weighted_sum(x, idx, w, assume_partition=assume_partition)
    live = (idx >= 0).to(w.dtype)
    expected = (x[torch.arange(2).view(2, 1, 1), idx.clamp_min(0)] * (w * live)[..., None]).sum(2)
    torch.testing.assert_close(y, expected)
    gy = torch.randn(2, 3, 3, generator=g, dtype=torch.float64)
    y.backward(gy)
    grad_x, grad_w = torch.autograd.grad(expected, (x, w), gy)
    torch.testing.assert_close(x.grad, grad_x)
    torch.testing.assert_close(w.grad, grad_w * live)
    assert torch.all(w.grad[idx < 0] == 0)


# ----------------------------------------------------------------------------- gradients
@pytest.mark.parametrize("impl", IMPLS)
def test_gradcheck(impl):
    x, scores = make_inputs(2, 11, 3, seed=5)
    mask = torch.zeros(2, 11, dtype=torch.bool)
    mask[1, 7:] = True
    x.requires_grad_()
    scores.requires_grad_()

    def f(x, scores):
        y, ys, _ = successive_halving_topk(x, scores, 3, mask, base=4.0, impl=impl)
        return y, ys

    assert torch.autograd.gradcheck(f, (x, scores), eps=1e-6, atol=1e-6)


# ----------------------------------------------------------------------------- padding
@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("B,n,k,style", [(3, 37, 5, "suffix"), (3, 40, 6, "holes"), (2, 6, 8, "holes")])
def test_output_ignores_values_at_padded_positions(impl, B, n, k, style):
    x, scores = make_inputs(B, n, 4, seed=7)
    mask = make_mask(B, n, style, seed=7)
    results = []
    for seed in (1, 2):
        g = torch.Generator().manual_seed(seed)
        xg = torch.where(mask[..., None], torch.randn(B, n, 4, generator=g, dtype=x.dtype) * 1e3, x)
        sg = torch.where(mask, torch.randn(B, n, generator=g, dtype=x.dtype) * 10, scores)
        results.append(grads(impl, xg, sg, k, mask))
    for a, b in zip(*results):
        assert torch.equal(a, b)
    grad_x, grad_s = results[0][3], results[0][4]
    assert torch.all(grad_x[mask] == 0) and torch.all(grad_s[mask] == 0)
    assert grad_x[~mask].abs().sum() > 0  # the check above is not vacuous


@pytest.mark.parametrize("impl", IMPLS)
def test_short_document_and_all_padding_rows(impl):
    # n = 16, k = 5: row 0 holds 3 tokens (fewer than k), row 1 none. Real elements are only ever
    # paired with padding (weight exactly 1), so row 0 keeps its 3 tokens unchanged, in order.
    x, scores = make_inputs(2, 16, 4, seed=9)
    mask = torch.ones(2, 16, dtype=torch.bool)
    mask[0, :3] = False
    y, ys, ym = run(impl, x, scores, 5, mask)
    assert ym.tolist() == [[False] * 3 + [True] * 2, [True] * 5]
    assert torch.equal(y[0, :3], x[0, :3])
    assert torch.equal(ys[0, :3], scores[0, :3])
    assert torch.all(y[0, 3:] == 0) and torch.all(y[1] == 0) and torch.all(ys[ym] == 0)


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("n,k", [(4, 4), (3, 6), (1, 1), (1, 3)])
def test_k_at_least_n_is_identity_with_mask(impl, n, k):
    x, scores = make_inputs(2, n, 3, seed=n + k)
    mask = torch.zeros(2, n, dtype=torch.bool)
    mask[1, -1] = True
    y, ys, ym = run(impl, x, scores, k, mask)
    exp_mask = torch.ones(2, k, dtype=torch.bool)
    exp_mask[:, :n] = mask
    exp_y = torch.zeros(2, k, 3, dtype=x.dtype)
    exp_y[:, :n] = x.masked_fill(mask[..., None], 0)
    exp_s = torch.zeros(2, k, dtype=x.dtype)
    exp_s[:, :n] = scores.masked_fill(mask, 0)
    assert torch.equal(ym, exp_mask) and torch.equal(y, exp_y) and torch.equal(ys, exp_s)


# ----------------------------------------------------------------------------- dtypes
@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_half_precision_matches_float32(impl, dtype):
    x, scores = make_inputs(3, 64, 16, dtype=torch.float32, seed=11)
    x, scores = x.to(dtype), scores.to(dtype)
    mask = make_mask(3, 64, "suffix", seed=11)
    y, ys, ym = run(impl, x, scores, 8, mask)
    assert y.dtype == dtype and ys.dtype == dtype
    # float32 run on the same (rounded) values: same tournament, only the final rounding differs
    y32, ys32, ym32 = run(impl, x.float(), scores.float(), 8, mask)
    assert torch.equal(ym, ym32)
    torch.testing.assert_close(y.float(), y32, rtol=2e-2, atol=2e-2)
    torch.testing.assert_close(ys.float(), ys32, rtol=2e-2, atol=1e-3)


def test_half_scores_do_not_overflow():
    # base**s in float16 would overflow for s >= ~3.7 (20**3.7 > 65504); it is computed in float32
    x = torch.randn(1, 8, 2).half()
    scores = torch.tensor([[4.0, 4.5, 3.9, 4.2, 0.1, 0.2, 0.3, 0.4]]).half()
    y, ys, _ = successive_halving_topk(x, scores, 2, impl="torch")
    assert torch.isfinite(y).all() and torch.isfinite(ys).all()


# ----------------------------------------------------------------------------- errors
@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
@pytest.mark.parametrize("impl", IMPLS)
def test_nonfinite_scores_raise(impl, bad):
    x, scores = make_inputs(2, 8, 2)
    scores[1, 3] = bad
    with pytest.raises(ValueError, match="NaN or inf"):
        run(impl, x, scores, 2)


def test_nonfinite_scores_at_padded_positions_are_allowed():
    x, scores = make_inputs(2, 8, 2)
    scores[1, 3] = float("nan")
    mask = torch.zeros(2, 8, dtype=torch.bool)
    mask[1, 3] = True
    for impl in IMPLS:
        y, ys, _ = run(impl, x, scores, 2, mask)
        assert torch.isfinite(y).all() and torch.isfinite(ys).all()


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(k=0), "k must"),
        (dict(k=-2), "k must"),
        (dict(k=2.5), "k must"),
        (dict(k=True), "k must"),
        (dict(scores=torch.rand(2, 7)), "scores must"),
        (dict(scores=torch.rand(2, 8, 1)), "scores must"),
        (dict(x=torch.randn(2, 8)), "x must"),
        (dict(mask=torch.zeros(2, 7, dtype=torch.bool)), "mask must"),
        (dict(mask=torch.zeros(2, 8)), "mask must have dtype"),
        (dict(base=0.0), "base must"),
        (dict(base=float("nan")), "base must"),
        (dict(impl="cuda"), "impl must be one of reference, torch, triton, auto"),
    ],
)
def test_bad_arguments_raise_value_error(kwargs, match):
    args = dict(x=torch.randn(2, 8, 3), scores=torch.rand(2, 8), k=2, mask=None)
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        successive_halving_topk(**args)


def test_numpy_integer_k_is_accepted():
    np = pytest.importorskip("numpy")
    x, scores = make_inputs(1, 8, 2)
    y, _, _ = successive_halving_topk(x, scores, np.int64(2), impl="torch")
    assert y.shape == (1, 2, 2)


# ----------------------------------------------------------------------------- dispatch
def _spy(monkeypatch, module, name):
    calls = []
    real = getattr(module, name)

    def spy(*args, **kwargs):
        calls.append(name)
        return real(*args, **kwargs)

    monkeypatch.setattr(module, name, spy)
    return calls


def test_env_var_overrides_auto(monkeypatch):
    x, scores = make_inputs(1, 8, 2)
    ref_calls = _spy(monkeypatch, reference, "successive_halving_topk_reference")
    tour_calls = _spy(monkeypatch, torch_impl, "tournament")

    monkeypatch.delenv(topk_pkg.ENV_VAR, raising=False)
    successive_halving_topk(x, scores, 2)  # auto on CPU -> torch
    assert (ref_calls, tour_calls) == ([], ["tournament"])

    monkeypatch.setenv(topk_pkg.ENV_VAR, "reference")
    successive_halving_topk(x, scores, 2)  # auto -> the environment's choice
    assert ref_calls == ["successive_halving_topk_reference"]
    successive_halving_topk(x, scores, 2, impl="torch")  # an explicit impl is not overridden
    assert len(ref_calls) == 1 and len(tour_calls) == 2

    monkeypatch.setenv(topk_pkg.ENV_VAR, "fastest")
    with pytest.raises(ValueError, match=topk_pkg.ENV_VAR):
        successive_halving_topk(x, scores, 2)


def test_triton_without_cuda_falls_back_with_one_warning(monkeypatch, caplog):
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    monkeypatch.setattr(topk_pkg, "_warned", set())
    x, scores = make_inputs(2, 16, 3)
    with caplog.at_level(logging.WARNING, logger="deep_pyramidion.topk"):
        out = [successive_halving_topk(x, scores, 4, impl="triton") for _ in range(3)]
    expected = successive_halving_topk(x, scores, 4, impl="torch")
    for got in out:
        assert torch.equal(got[0], expected[0])
    warnings = [r for r in caplog.records if r.name == "deep_pyramidion.topk"]
    assert len(warnings) == 1 and "torch path" in warnings[0].getMessage()
