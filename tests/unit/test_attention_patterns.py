"""Encoder attention patterns (modules/attention.py, modules/memory.py) with a plain-torch layer:
each blockwise computation equals a dense masked reference built from the pattern's definition; no
computation sees a dense T x T problem; memory carries no gradient."""
import math

import pytest
import torch

from deep_pyramidion.config import PyramidionConfig
from deep_pyramidion.modules import ATTENTION_PATTERNS, build_attention_pattern
from tests.support.dense_attention import dense_reference, padding
from tests.support.layers import TorchEncoderLayer

D = 16


def config(**kw):
    base = dict(encoder_attention="blockwise", chunk_size=8, attention_stride=0,
                fixed_summary_cells=2, compression_taps=2, encoder_layers=2)
    base.update(kw)
    return PyramidionConfig(**base).validate()


def make_layer(normalize_before=False, seed=0):
    return TorchEncoderLayer(D, heads=4, ffn=32, normalize_before=normalize_before, seed=seed).eval()


CASES = [
    # T, lengths, left padding, extra pattern flags, pre-norm layer
    (23, [23, 17, 3], False, {}, False),
    (23, [23, 17, 3], True, {}, True),
    (40, [40, 9], True, {"attention_stride": 5}, False),
    (7, [7, 7], False, {"attention_stride": 3}, True),
    (30, [30, 30], False, {}, False),
    (1, [1], False, {}, True),
]
PATTERNS = [
    ("full", 0, {}),
    ("blockwise", 0, {}),
    ("strided", 0, {}),
    ("strided", 1, {}),
    ("fixed", 0, {}),
    ("fixed", 1, {}),
    ("fixed", 1, {"fixed_summary_cells": 1}),
    ("blockwise-memory", 0, {}),
    ("blockwise-memory", 0, {"memory_compression": "avg"}),
    ("blockwise-memory", 1, {"memory_compression": "conv", "compressed_memory_chunks": 1}),
    ("blockwise-memory", 0, {"memory_compression": "most-used", "memory_compression_rate": 2}),
]


@pytest.mark.parametrize("T, lengths, left, flags, normalize_before", CASES)
@pytest.mark.parametrize("name, index, extra", PATTERNS)
def test_pattern_equals_dense_masked_reference(name, index, extra, T, lengths, left, flags,
                                               normalize_before):
    cfg = config(encoder_attention=name, chunk_size=6, **{**flags, **extra})
    torch.manual_seed(1)
    pattern = build_attention_pattern(cfg, D).eval()
    layer = make_layer(normalize_before)
    x = torch.randn(len(lengths), T, D)
    mask = padding(lengths, T, left)
    real = ~mask                                                 # (B, T)
    with torch.no_grad():
        ref, ref_usage = dense_reference(name, index, layer, pattern, x, mask, cfg)
        out = pattern(layer, index, x, mask, need_usage=False)
        torch.testing.assert_close(out.x[real], ref[real])
        assert out.usage is None
        with_usage = pattern(layer, index, x, mask, need_usage=True)
        torch.testing.assert_close(with_usage.x[real], ref[real])
        torch.testing.assert_close(with_usage.usage[real], ref_usage[real])


@pytest.mark.parametrize("name, index, bound", [
    ("blockwise", 0, lambda T: 32),
    ("strided", 0, lambda T: math.ceil(math.sqrt(T))),
    ("strided", 1, lambda T: math.ceil(T / math.ceil(math.sqrt(T)))),
    ("fixed", 1, lambda T: 2 * math.ceil(T / math.ceil(math.sqrt(T)))),
    ("blockwise-memory", 0, lambda T: 2 * 32),
])
def test_no_pattern_computes_a_dense_problem(name, index, bound):
    T = 1024
    pattern = build_attention_pattern(config(encoder_attention=name, chunk_size=32), D)
    layer = make_layer()
    with torch.no_grad():
        pattern(layer, index, torch.randn(1, T, D), torch.zeros(1, T, dtype=torch.bool))
    assert layer.calls and all(keys <= bound(T) and queries * keys < T * T // 8
                               for queries, keys in layer.calls)


def test_memory_is_read_but_carries_no_gradient():
    pattern = build_attention_pattern(config(encoder_attention="blockwise-memory", chunk_size=4), D)
    layer = make_layer()
    x = torch.randn(1, 12, D, requires_grad=True)
    nomask = torch.zeros(1, 12, dtype=torch.bool)
    y = pattern(layer, 0, x, nomask).x
    # chunk 1 reads chunk 0 as memory (a random projection: a layer-normed row sums to a constant)
    (y[:, 4:8] * torch.randn_like(y[:, 4:8])).sum().backward()
    assert torch.equal(x.grad[:, :4], torch.zeros_like(x.grad[:, :4]))
    assert x.grad[:, 4:8].abs().sum() > 0
    with torch.no_grad():
        other = x.clone()
        other[:, :4] += 1.0
        y2 = pattern(layer, 0, other, nomask).x
    assert not torch.allclose(y2[:, 4:8], y[:, 4:8])              # ... but its values are read
    torch.testing.assert_close(y2[:, 8:], y[:, 8:])               # chunk 2 sees only chunk 1


def memory_pattern(compression="conv", **kw):
    torch.manual_seed(0)
    cfg = config(encoder_attention="blockwise-memory", chunk_size=4, memory_compression=compression,
                 **kw)
    return build_attention_pattern(cfg, D).train()


def test_reconstruction_loss_trains_only_the_compressor():
    pattern = memory_pattern("conv")
    layer = make_layer().train()
    x = torch.randn(2, 20, D)
    out = pattern(layer, 1, x, padding([20, 11], 20, left=True))
    assert out.reconstruction_loss is not None and out.reconstruction_loss > 0
    out.reconstruction_loss.backward()
    compressor = pattern.compressors["1"]
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in compressor.parameters())
    assert all(p.grad is None for p in layer.parameters())      # the attention is frozen in it
    # the task loss reaches the compressor too, through the attention over its slots
    pattern.zero_grad()
    y = pattern(layer, 1, x, torch.zeros(2, 20, dtype=torch.bool)).x
    (y * torch.randn_like(y)).sum().backward()
    assert all(p.grad.abs().sum() > 0 for p in compressor.parameters())


@pytest.mark.parametrize("T", [4, 8])   # one chunk; two chunks (memory, but nothing to compress)
def test_short_batches_keep_the_compressor_in_the_graph(T):
    pattern = memory_pattern("conv")
    out = pattern(make_layer(), 0, torch.randn(2, T, D), torch.zeros(2, T, dtype=torch.bool))
    assert out.reconstruction_loss is not None and out.reconstruction_loss.item() == 0.0
    (out.x.sum() + out.reconstruction_loss).backward()
    assert all(p.grad is not None for p in pattern.compressors["0"].parameters())


@pytest.mark.parametrize("compression", ["avg", "most-used"])
def test_parameter_free_compression_reports_no_reconstruction_loss(compression):
    pattern = memory_pattern(compression)
    out = pattern(make_layer(), 0, torch.randn(1, 20, D), torch.zeros(1, 20, dtype=torch.bool))
    assert out.reconstruction_loss is None


def test_compressed_memory_cap_limits_the_keys():
    layer = make_layer()
    T = 64                                                      # 16 chunks of 4, m = 1 slot each
    for cap, keys in [(0, 14 + 8), (3, 3 + 8)]:
        layer.calls.clear()
        pattern = memory_pattern("avg", compressed_memory_chunks=cap)
        pattern(layer, 0, torch.randn(1, T, D), torch.zeros(1, T, dtype=torch.bool))
        assert [s for _, s in layer.calls] == [keys]


def test_every_pattern_is_registered():
    assert set(ATTENTION_PATTERNS) == {"full", "blockwise", "strided", "fixed", "blockwise-memory"}


@pytest.mark.parametrize("name, index, extra", [
    ("blockwise", 0, {}),
    ("strided", 0, {}),
    ("strided", 1, {}),
    ("fixed", 0, {}),
    ("fixed", 1, {}),
    ("blockwise-memory", 0, {}),
    ("blockwise-memory", 0, {"memory_compression": "avg"}),
])
@pytest.mark.parametrize("T", [5, 20])   # one chunk, several chunks
def test_a_row_of_only_padding_changes_nothing_and_stays_finite(name, index, extra, T):
    pattern = build_attention_pattern(config(encoder_attention=name, **extra), D).eval()
    layer = make_layer()
    x = torch.randn(2, T, D)
    mask = padding([T, 0], T, left=False)
    with torch.no_grad():
        out = pattern(layer, index, x, mask, need_usage=True)
        alone = pattern(layer, index, x[:1], mask[:1], need_usage=True)
    assert torch.isfinite(out.x).all() and torch.isfinite(out.usage).all()
    torch.testing.assert_close(out.x[0], alone.x[0])
    torch.testing.assert_close(out.usage[0], alone.usage[0])
