"""Property-based tests (hypothesis) for the parts that see arbitrary inputs: the top-k operator,
the blockwise reshaping and the pooling-schedule parser. Example counts are kept modest and
deadlines off so the file runs in well under a minute."""
import string

import pytest
import torch
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from deep_pyramidion.modules.chunking import merge_chunks, run_blockwise, split_chunks
from deep_pyramidion.schedule import FLAG, parse_pooling_schedule
from deep_pyramidion.topk import successive_halving_topk

SETTINGS = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow])

# ---------------------------------------------------------------------------------------------
# successive-halving top-k


@st.composite
def topk_problems(draw):
    B = draw(st.integers(1, 3))
    n = draw(st.integers(1, 40))
    k = draw(st.integers(1, 48))  # k > n included
    D = draw(st.integers(1, 4))
    # few distinct values -> many exact ties; or continuous values
    if draw(st.booleans()):
        values = st.sampled_from([0.0, 1e-5, 0.25, 0.5, 0.5, 1.0])
    else:
        values = st.floats(-2.0, 2.0, allow_nan=False, width=32)
    scores = torch.tensor(draw(st.lists(st.lists(values, min_size=n, max_size=n), min_size=B,
                                        max_size=B)), dtype=torch.float64)
    mask_kind = draw(st.sampled_from(["none", "random", "suffix", "all-padding-row"]))
    if mask_kind == "none":
        mask = None
    elif mask_kind == "random":
        mask = torch.tensor(draw(st.lists(st.lists(st.booleans(), min_size=n, max_size=n),
                                          min_size=B, max_size=B)))
    else:
        lengths = [draw(st.integers(0, n)) for _ in range(B)]
        if mask_kind == "all-padding-row":
            lengths[draw(st.integers(0, B - 1))] = 0
        mask = torch.arange(n)[None, :] >= torch.tensor(lengths)[:, None]
    seed = draw(st.integers(0, 2 ** 16))
    x = torch.randn(B, n, D, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    base = draw(st.sampled_from([1.5, 20.0, 1000.0]))
    flip_right, sort_back = draw(st.booleans()), draw(st.booleans())
    return x, scores, k, mask, base, flip_right, sort_back


@settings(max_examples=120, **SETTINGS)
@given(problem=topk_problems())
def test_topk_reference_equals_torch_and_is_finite(problem):
    x, scores, k, mask, base, flip_right, sort_back = problem
    B, n, D = x.shape
    kw = dict(mask=mask, base=base, flip_right=flip_right, sort_back=sort_back)
    ref = successive_halving_topk(x, scores, k, impl="reference", **kw)
    fast = successive_halving_topk(x, scores, k, impl="torch", **kw)
    y, y_scores, y_mask = fast
    assert y.shape == (B, k, D) and y_scores.shape == (B, k) and y_mask.shape == (B, k)
    assert torch.isfinite(y).all() and torch.isfinite(y_scores).all()
    assert torch.equal(ref[2], y_mask)
    torch.testing.assert_close(ref[0], y, rtol=1e-9, atol=1e-12)
    torch.testing.assert_close(ref[1], y_scores, rtol=1e-9, atol=1e-12)

    real = torch.ones(B, n, dtype=torch.bool) if mask is None else ~mask
    # a row keeps min(k, real tokens) real outputs; masked outputs are exactly zero
    assert (~y_mask).sum(1).tolist() == real.sum(1).clamp(max=k).tolist()
    assert torch.equal(y[y_mask], torch.zeros_like(y[y_mask]))
    # real outputs are convex mixtures: their scores lie within the row's real scores
    for b in range(B):
        if real[b].any():
            lo, hi = scores[b][real[b]].min(), scores[b][real[b]].max()
            out = y_scores[b][~y_mask[b]]
            assert (out >= lo - 1e-12).all() and (out <= hi + 1e-12).all()


@settings(max_examples=60, **SETTINGS)
@given(problem=topk_problems(), garbage=st.sampled_from([1e6, -3.0, 0.0]))
def test_topk_ignores_values_at_padded_positions_and_float32_agrees(problem, garbage):
    x, scores, k, mask, base, flip_right, sort_back = problem
    assume(mask is not None)
    kw = dict(mask=mask, base=base, flip_right=flip_right, sort_back=sort_back, impl="torch")
    y, y_scores, y_mask = successive_halving_topk(x, scores, k, **kw)
    x2 = x.masked_fill(mask.unsqueeze(-1), garbage)
    s2 = scores.masked_fill(mask, garbage)
    y2, y_scores2, y_mask2 = successive_halving_topk(x2, s2, k, **kw)
    assert torch.equal(y_mask, y_mask2)
    torch.testing.assert_close(y, y2, rtol=0, atol=0)
    torch.testing.assert_close(y_scores[~y_mask], y_scores2[~y_mask2], rtol=0, atol=0)
    # float32 (the dtype training uses): same mask, values within float32 rounding
    y32, _, m32 = successive_halving_topk(x.float(), scores.float(), k, **kw)
    ref32, _, rm32 = successive_halving_topk(x.float(), scores.float(), k,
                                             **{**kw, "impl": "reference"})
    assert torch.equal(m32, rm32) and torch.isfinite(y32).all()
    torch.testing.assert_close(y32, ref32, rtol=1e-5, atol=1e-5)


@settings(max_examples=40, **SETTINGS)
@given(problem=topk_problems())
def test_topk_gradients_are_finite_and_match_reference(problem):
    x, scores, k, mask, base, flip_right, sort_back = problem
    grads = []
    for impl in ("reference", "torch"):
        xi = x.clone().requires_grad_()
        si = scores.clone().requires_grad_()
        y, ys, _ = successive_halving_topk(xi, si, k, mask=mask, base=base, flip_right=flip_right,
                                           sort_back=sort_back, impl=impl)
        g = torch.Generator().manual_seed(0)
        (y * torch.randn(y.shape, generator=g, dtype=y.dtype)).sum().add(ys.sum()).backward()
        gx = xi.grad
        gs = si.grad if si.grad is not None else torch.zeros_like(si)
        assert torch.isfinite(gx).all() and torch.isfinite(gs).all()
        grads.append((gx, gs))
    torch.testing.assert_close(grads[0][0], grads[1][0], rtol=1e-8, atol=1e-10)
    torch.testing.assert_close(grads[0][1], grads[1][1], rtol=1e-8, atol=1e-10)


# ---------------------------------------------------------------------------------------------
# blockwise reshaping


@st.composite
def chunk_problems(draw):
    T = draw(st.integers(1, 90))
    B = draw(st.integers(1, 4))
    C = draw(st.integers(1, 5))
    chunk = draw(st.integers(1, 100))
    kind = draw(st.sampled_from(["none", "lengths", "random"]))
    if kind == "none":
        mask = torch.zeros(B, T, dtype=torch.bool)
    elif kind == "lengths":
        lengths = [draw(st.integers(0, T)) for _ in range(B)]
        mask = torch.arange(T)[None, :] >= torch.tensor(lengths)[:, None]
    else:
        mask = torch.tensor(draw(st.lists(st.lists(st.booleans(), min_size=T, max_size=T),
                                          min_size=B, max_size=B)))
    x = torch.randn(B, T, C, generator=torch.Generator().manual_seed(draw(st.integers(0, 999))))
    return x, mask, chunk


@settings(max_examples=150, **SETTINGS)
@given(problem=chunk_problems())
def test_blockwise_round_trip_is_exact(problem):
    x, mask, chunk = problem
    B, T, C = x.shape
    chunks = split_chunks(x, mask, chunk)
    c = min(chunk, T)
    N = -(-T // c)
    assert chunks.x.shape[1] == c and chunks.padding_mask.shape[1] == c
    pad = mask
    grid = torch.nn.functional.pad(pad, (0, N * c - T), value=True).view(B * N, c)
    live = (~grid).any(1)
    # exactly the chunks holding a real token are kept, each with its own mask
    assert torch.equal(chunks.live, live.nonzero().squeeze(1))
    assert torch.equal(chunks.padding_mask, grid[live])
    assert int((~chunks.padding_mask).sum()) == int((~pad).sum())  # no real token dropped
    back = merge_chunks(chunks.x, chunks)
    assert back.shape == x.shape
    # live chunks come back bit for bit; dead chunks (only padding) come back as zeros
    dead_positions = (~live).view(B, N).repeat_interleave(c, dim=1)[:, :T].unsqueeze(-1)
    assert torch.equal(back, x.masked_fill(dead_positions, 0.0))
    # a position-wise layer run blockwise is that layer, on every real token
    out = run_blockwise(lambda xc, mc: xc * 2 + 1, x, mask, chunk)
    real = ~pad.unsqueeze(-1)
    assert torch.equal(out * real, (x * 2 + 1) * real)


@settings(max_examples=60, **SETTINGS)
@given(problem=chunk_problems())
def test_blockwise_never_sees_an_all_padding_chunk(problem):
    x, mask, chunk = problem
    seen = []

    def layer(xc, mc):
        seen.append(mc)
        return xc

    run_blockwise(layer, x, mask, chunk)
    assert len(seen) == 1
    assert (~seen[0]).any(dim=1).all()  # every row the layer gets holds a real token


# ---------------------------------------------------------------------------------------------
# pooling-schedule parser


def _check_schedule(result, layers):
    assert isinstance(result, dict)
    widths = list(result.values())
    assert list(result) == sorted(result)
    assert all(type(k) is int and 0 <= k < layers for k in result)
    assert all(type(w) is int and w > 0 for w in widths)
    assert widths == sorted(widths, reverse=True)


@settings(max_examples=300, **SETTINGS)
@given(text=st.one_of(
    st.text(max_size=60),
    st.text(alphabet=string.digits + "{}[](),: -+._'\"xjeTrueNonal", max_size=40),
), layers=st.integers(1, 8))
def test_schedule_parser_parses_or_names_the_flag(text, layers):
    try:
        result = parse_pooling_schedule(text, layers)
    except ValueError as err:
        assert FLAG in str(err)
        return
    _check_schedule(result, layers)


@settings(max_examples=150, **SETTINGS)
@given(widths=st.lists(st.integers(1, 10 ** 6), min_size=0, max_size=6), data=st.data())
def test_schedule_round_trip(widths, data):
    layers = max(len(widths), 1) + data.draw(st.integers(0, 3))
    chosen = sorted(data.draw(st.lists(st.integers(0, layers - 1), min_size=len(widths),
                                       max_size=len(widths), unique=True)))
    schedule = dict(zip(chosen, sorted(widths, reverse=True)))
    spaced = data.draw(st.sampled_from([str(schedule), repr(list(schedule.items())),
                                        " " + str(schedule).replace(", ", " ,\t") + "\n"]))
    assert parse_pooling_schedule(spaced, layers) == schedule


@pytest.fixture
def marker(tmp_path):
    return tmp_path / "executed"


@settings(max_examples=80, suppress_health_check=[HealthCheck.function_scoped_fixture], deadline=None)
@given(prefix=st.sampled_from(["", "{0: ", "{0: 16, ", "[(0, ", "(", "{", "lambda: "]),
       suffix=st.sampled_from(["", "}", ")}", ")]", ", 1: 8}", ")"]),
       form=st.integers(0, 4))
def test_schedule_parser_never_executes_code(marker, prefix, suffix, form):
    path = repr(str(marker))
    payloads = [
        f"__import__('pathlib').Path({path}).touch()",
        f"open({path}, 'w')",
        f"[c for c in ().__class__.__base__.__subclasses__()]",
        f"(lambda: open({path}, 'w'))()",
        f"exec(\"open({path}, 'w')\")",
    ]
    text = prefix + payloads[form] + suffix
    with pytest.raises(ValueError, match=FLAG):
        parse_pooling_schedule(text, 4)
    assert not marker.exists()
