"""Poolers behind --encoder-pooling (modules/poolers/; the top-k operator itself: test_topk) and
SeqPool: shapes, masks, padding never read, gradients, each against a loop, and the assignments
they report."""
import math

import pytest
import torch

from deep_pyramidion.config import PyramidionConfig
from deep_pyramidion.modules import SeqPool
from deep_pyramidion.modules.poolers import POOLERS, build_pooler
from deep_pyramidion.modules.poolers.windows import split_windows

NEW_POOLERS = ["hard-topk", "avg", "max", "conv", "dilated-conv", "most-used", "seqpool"]
TRAINABLE = {"hard-topk", "conv", "dilated-conv", "seqpool"}


def make(name, D=6, width=4, **kw):
    """The pooler as the encoder builds it; the config is not validated, so that a module's own
    checks can be tested too."""
    torch.manual_seed(0)
    return build_pooler(name, D, width, PyramidionConfig(**{"compression_taps": 4, **kw}))


def call(pooler, x, mask, usage=None, with_assignment=False):
    """(y, y_mask), giving most-used an attention usage."""
    if pooler.needs_usage and usage is None:
        usage = torch.rand(x.shape[:2], generator=torch.Generator().manual_seed(1))
    out = pooler(x, mask, usage=usage, with_assignment=with_assignment)
    return (out.x, out.mask) if not with_assignment else out


def pool(pooler, x, mask):
    out = pooler(x, mask)
    return out.x, out.mask


def padding(lengths, n, left=False):
    pos = torch.arange(n)[None, :]
    lengths = torch.tensor(lengths)[:, None]
    return pos < n - lengths if left else pos >= lengths   # (B, n) True = padding


def test_registry_holds_every_option():
    assert set(NEW_POOLERS) | {"topk"} <= set(POOLERS)


@pytest.mark.parametrize("name", NEW_POOLERS)
@pytest.mark.parametrize("n, width, lengths, left", [
    (23, 4, [23, 17, 3], False),
    (23, 4, [23, 17, 3], True),
    (9, 4, [9, 1], False),        # r = 3: the last window holds only padding
    (10, 4, [10, 10], True),      # r = 3, r does not divide n
    (3, 8, [3, 2], False),        # width >= n: identity
])
def test_shapes_masks_and_padding_is_never_read(name, n, width, lengths, left):
    pooler = make(name, width=width)
    pooler.eval()
    B, D = len(lengths), 6
    mask = padding(lengths, n, left)
    x = torch.randn(B, n, D)
    y, y_mask = call(pooler, x, mask)
    k = min(width, n)
    assert y.shape == (B, k, D) and y_mask.shape == (B, k) and y_mask.dtype == torch.bool
    assert torch.isfinite(y).all()
    # every document keeps at least one real output, and never more than it has tokens
    real = (~y_mask).sum(1)
    assert (real >= 1).all() and (real <= torch.tensor(lengths)).all()
    # garbage at padded positions changes nothing (values, and the usage most-used ranks by)
    garbage = x.masked_fill(mask.unsqueeze(-1), 1e4)
    usage = torch.rand(B, n, generator=torch.Generator().manual_seed(1))
    y1, m1 = call(pooler, x, mask, usage)
    y2, m2 = call(pooler, garbage, mask, usage.masked_fill(mask, 1e6))
    assert torch.equal(m1, m2)
    torch.testing.assert_close(y1[~m1], y2[~m2])


@pytest.mark.parametrize("name", sorted(TRAINABLE))
@pytest.mark.parametrize("n", [23, 3])   # pooling, and the identity case (width >= n)
def test_gradients_reach_the_trainable_parts(name, n):
    pooler = make(name, width=4)
    x = torch.randn(2, n, 6, requires_grad=True)
    mask = padding([n, max(1, n - 5)], n)
    y, y_mask = call(pooler, x, mask)
    # downstream layers never read masked outputs: only real outputs carry a gradient
    (y * torch.randn_like(y) * (~y_mask).unsqueeze(-1)).sum().backward()
    missing = [p for p, v in pooler.named_parameters() if v.grad is None]
    assert not missing                              # DDP needs every parameter in the graph
    if n > 4:
        assert all(v.grad.abs().sum() > 0 for v in pooler.parameters())
    assert x.grad[~mask].abs().sum() > 0
    assert torch.equal(x.grad[mask], torch.zeros_like(x.grad[mask]))


def reference_windows(x, mask, k, reduce):
    """Loop over windows of r = ceil(n/k) positions; an all-padding window -> None."""
    B, n, D = x.shape
    r = math.ceil(n / k)
    out = torch.zeros(B, k, D)
    out_mask = torch.ones(B, k, dtype=torch.bool)
    for b in range(B):
        for j in range(k):
            rows = [t for t in range(j * r, min((j + 1) * r, n)) if not mask[b, t]]
            if rows:
                out[b, j] = reduce(x[b, rows])
                out_mask[b, j] = False
    return out, out_mask


@pytest.mark.parametrize("name, reduce", [("avg", lambda v: v.mean(0)),
                                          ("max", lambda v: v.max(0).values)])
@pytest.mark.parametrize("n, k", [(23, 4), (10, 4), (9, 4), (16, 4), (5, 5)])
def test_avg_and_max_match_a_loop(name, reduce, n, k):
    x = torch.randn(3, n, 6)
    mask = padding([n, n - 2, 1], n, left=True)
    y, y_mask = pool(make(name, width=k), x, mask)
    if k >= n:
        assert torch.equal(y, x)
        return
    ref, ref_mask = reference_windows(x, mask, k, reduce)
    assert torch.equal(y_mask, ref_mask)
    torch.testing.assert_close(y, ref)


def test_split_windows_pads_the_tail_and_never_drops_it():
    x = torch.arange(10.0).view(1, 10, 1)
    xw, mw, r = split_windows(x, torch.zeros(1, 10, dtype=torch.bool), 4)
    assert r == 3 and xw.shape == (1, 4, 3, 1)
    assert xw.flatten()[:10].tolist() == list(range(10))
    assert mw.flatten().tolist() == [False] * 10 + [True] * 2


def test_conv_at_rate_equal_to_taps_is_a_plain_strided_conv():
    pooler = make("conv", D=6, width=5, compression_taps=4)   # n = 20, k = 5: r = 4 = K
    conv = torch.nn.Conv1d(6, 6, kernel_size=4, stride=4)
    with torch.no_grad():
        conv.weight.copy_(pooler.weight)
        conv.bias.copy_(pooler.bias)
    x = torch.randn(2, 20, 6)
    y, y_mask = pool(pooler, x, torch.zeros(2, 20, dtype=torch.bool))
    torch.testing.assert_close(y, conv(x.transpose(1, 2)).transpose(1, 2))
    assert not y_mask.any()


@pytest.mark.parametrize("n", [24, 30])   # r = 6 (weights resampled from 2 taps), 8
def test_conv_resampled_kernel_keeps_the_sum_of_two_taps(n):
    # with K = 2 the resampled, rescaled taps sum to the stored ones: a constant input gives
    # the same output at every rate
    pooler = make("conv", D=3, width=4, compression_taps=2)
    x = torch.ones(1, n, 3)
    y, _ = pool(pooler, x, torch.zeros(1, n, dtype=torch.bool))
    expected = pooler.weight.sum(-1) @ torch.ones(3) + pooler.bias
    torch.testing.assert_close(y[0, 0], expected.detach())


@pytest.mark.parametrize("n, k, taps", [(32, 8, 4), (30, 4, 2), (9, 4, 4), (40, 8, 3), (12, 4, 1)])
def test_dilated_conv_matches_a_loop(n, k, taps):
    pooler = make("dilated-conv", D=5, width=k, compression_taps=taps)
    x = torch.randn(2, n, 5)
    mask = padding([n, n - 7], n, left=True)
    y, y_mask = pool(pooler, x, mask)
    means, empty = reference_windows(x, mask, k, lambda v: v.mean(0))   # empty windows: zeros
    left = (taps - 1) // 2
    for b in range(2):
        for j in range(k):
            if y_mask[b, j]:
                assert empty[b, j] and torch.equal(y[b, j], torch.zeros(5))
                continue
            acc = pooler.bias.detach().clone()
            for t in range(taps):
                w = j + t - left                 # the window tap t reads, one window apart
                if 0 <= w < k:
                    acc += pooler.weight[:, :, t].detach() @ means[b, w]
            torch.testing.assert_close(y[b, j], acc)


def test_dilated_conv_sees_the_neighbouring_windows_and_conv_does_not():
    x = torch.randn(1, 16, 6)
    mask = torch.zeros(1, 16, dtype=torch.bool)
    changed = x.clone()
    changed[0, 4:8] += 1.0                       # window 1 of 4 (r = 4)
    for name, neighbours_change in (("conv", False), ("dilated-conv", True)):
        pooler = make(name, width=4, compression_taps=3)
        a, _ = pool(pooler, x, mask)
        b, _ = pool(pooler, changed, mask)
        assert not torch.allclose(a[0, 1], b[0, 1])
        assert torch.allclose(a[0, 0], b[0, 0]) != neighbours_change
        assert torch.allclose(a[0, 3], b[0, 3])  # out of reach of both


def test_most_used_keeps_the_most_attended_tokens_in_document_order():
    pooler = make("most-used", width=3)
    assert pooler.needs_usage and not list(pooler.parameters())
    x = torch.arange(8.0).view(1, 8, 1).expand(1, 8, 6)
    usage = torch.tensor([[0.1, 5.0, 0.2, 3.0, 9.0, 0.0, 0.3, 0.4]])
    mask = torch.tensor([[False] * 7 + [True]])
    y, y_mask = call(pooler, x, mask, usage.masked_fill(mask, 100.0))   # padding never wins
    assert y[0, :, 0].tolist() == [1.0, 3.0, 4.0]
    assert not y_mask.any()
    with pytest.raises(ValueError, match="attention each token received"):
        pooler(x, mask)


def test_hard_topk_selects_by_score_in_document_order_with_a_straight_through_gradient():
    pooler = make("hard-topk", D=1, width=3)
    with torch.no_grad():   # score = sigmoid(x): the largest values win
        pooler.scorer.net.weight.fill_(1.0)
        pooler.scorer.net.bias.zero_()
    x = torch.tensor([[0.5, -1.0, 3.0, 2.0, 0.0, 9.0]]).unsqueeze(-1)   # (1, 6, 1)
    mask = torch.tensor([[False] * 5 + [True]])          # 9.0 is padding: never selected
    x.requires_grad_()
    y, y_mask = pool(pooler, x, mask)
    assert y.detach().flatten().tolist() == [0.5, 3.0, 2.0]   # forward: exactly the kept tokens
    assert not y_mask.any()
    y.sum().backward()
    # straight-through: d y_j / d s_j = x_j reaches the scorer
    s = torch.sigmoid(torch.tensor([0.5, 3.0, 2.0]))
    expected = (torch.tensor([0.5, 3.0, 2.0]) * s * (1 - s) * torch.tensor([0.5, 3.0, 2.0])).sum()
    torch.testing.assert_close(pooler.scorer.net.weight.grad.flatten()[0], expected)


def test_hard_topk_short_document_outputs_are_masked():
    pooler = make("hard-topk", width=4)
    x = torch.randn(2, 10, 6)
    mask = padding([10, 2], 10, left=True)
    y, y_mask = pool(pooler, x, mask)
    assert (~y_mask).sum(1).tolist() == [4, 2]
    assert torch.equal(y[y_mask], torch.zeros_like(y[y_mask]))


def test_seqpool_is_a_softmax_weighted_sum():
    torch.manual_seed(0)
    pool = SeqPool(5)
    x = torch.randn(3, 7, 5)
    w = torch.softmax(pool.attention(x).squeeze(-1), dim=1)
    torch.testing.assert_close(pool(x), (w.unsqueeze(-1) * x).sum(1))


def test_seqpool_masks_padding_and_handles_empty_rows():
    torch.manual_seed(0)
    pool = SeqPool(4)
    x = torch.randn(3, 6, 4)
    mask = padding([6, 2, 0], 6)
    y = pool(x, mask)
    torch.testing.assert_close(y[1], pool(x[1:2, :2])[0])      # padding is not part of the softmax
    assert torch.equal(y[2], torch.zeros(4))                    # all padding -> zeros, not NaN
    torch.testing.assert_close(y, pool(x.masked_fill(mask.unsqueeze(-1), float("nan")), mask))
    with pytest.raises(ValueError, match="SeqPool"):
        pool(torch.randn(2, 3, 5))
    with pytest.raises(ValueError, match="mask"):
        pool(x, mask[:, :3])


def test_windowed_seqpool_is_seqpool_per_window():
    pooler = make("seqpool", D=4, width=3)
    x = torch.randn(2, 12, 4)
    mask = padding([12, 7], 12)
    y, y_mask = pool(pooler, x, mask)
    for b in range(2):
        for j in range(3):
            window = slice(4 * j, 4 * j + 4)
            if y_mask[b, j]:
                continue
            expected = pooler.pool(x[b:b + 1, window], mask[b:b + 1, window])[0]
            torch.testing.assert_close(y[b, j], expected)


@pytest.mark.parametrize("taps", [0, -2, 1.5])
@pytest.mark.parametrize("name", ["conv", "dilated-conv"])
def test_bad_compression_taps(name, taps):
    with pytest.raises(ValueError, match="--compression-taps"):
        make(name, compression_taps=taps)


@pytest.mark.parametrize("name", sorted(POOLERS))
@pytest.mark.parametrize("n, width, lengths", [(23, 4, [23, 11]), (9, 4, [9, 1]), (3, 8, [3, 2])])
def test_assignment_describes_the_output(name, n, width, lengths):
    """Where a pooler reports which inputs each output mixes (the analysis tools draw it), the
    weighted sum of those inputs is the output; poolers whose outputs are no such sum say None."""
    pooler = make(name, width=width).eval()
    x = torch.randn(len(lengths), n, 6)
    mask = padding(lengths, n, left=True)
    out = call(pooler, x, mask, with_assignment=True)
    plain = call(pooler, x, mask)
    assert torch.equal(out.x, plain[0]) and torch.equal(out.mask, plain[1])
    if name in ("max", "conv", "dilated-conv") and width < n:
        assert out.assignment is None
        return
    index, weight = out.assignment
    assert index.shape == weight.shape and index.shape[:2] == out.x.shape[:2]
    members = x.gather(1, index.clamp_min(0).flatten(1).unsqueeze(-1).expand(-1, -1, 6))
    members = members.view(*index.shape, 6)
    recomputed = (members * weight.masked_fill(index < 0, 0.0).unsqueeze(-1)).sum(dim=2)
    torch.testing.assert_close(recomputed[~out.mask], out.x[~out.mask], atol=1e-5, rtol=1e-5)
    # padding never has weight, and no input is claimed by two outputs
    real_members = index[(index >= 0) & (weight > 0)]
    for b in range(len(lengths)):
        claimed = index[b][(index[b] >= 0) & (weight[b] > 0)]
        assert claimed.unique().numel() == claimed.numel()
        assert not mask[b, claimed].any()
    assert real_members.numel() > 0
