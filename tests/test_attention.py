"""Encoder attention patterns: each blockwise computation equals a dense masked reference built from
the pattern's definition; no computation sees a dense T x T problem; memory carries no gradient."""
import math
from argparse import Namespace

import pytest
import torch

from deep_pyramidion.modules.attention import ATTENTION_PATTERNS, build_attention_pattern
from deep_pyramidion.modules.encoder_layer import PyramidionEncoderLayer
from fairseq.models.transformer import TransformerConfig

D, HEADS = 16, 4
# the dense references pass a float attn_mask next to fairseq's bool key_padding_mask
pytestmark = pytest.mark.filterwarnings("ignore:Support for mismatched key_padding_mask")


def make_layer(normalize_before=False, seed=0):
    cfg = TransformerConfig()
    cfg.encoder.embed_dim = D
    cfg.encoder.ffn_embed_dim = 32
    cfg.encoder.attention_heads = HEADS
    cfg.encoder.normalize_before = normalize_before
    cfg.dropout = cfg.attention_dropout = cfg.activation_dropout = 0.0
    torch.manual_seed(seed)
    layer = PyramidionEncoderLayer(cfg)
    layer.eval()
    return layer


def pattern_args(**kw):
    base = dict(encoder_attention="blockwise", chunk_size=8, attention_stride=0,
                fixed_summary_cells=2, memory_compression="none", memory_compression_rate=4,
                compressed_memory_chunks=0, compression_taps=2, encoder_layers=2,
                encoder_pooling_arch="linear")
    base.update(kw)
    return Namespace(**base)


def padding(lengths, T, left):
    pos = torch.arange(T)[None, :]
    lengths = torch.tensor(lengths)[:, None]
    return pos < T - lengths if left else pos >= lengths       # (B, T) True = padding


# ---------------------------------------------------------------------------------------------
# the layer


@pytest.mark.parametrize("normalize_before", [False, True])
def test_extended_layer_path_reproduces_fairseqs_forward(normalize_before):
    layer = make_layer(normalize_before)
    x = torch.randn(9, 3, D)
    mask = padding([9, 4, 1], 9, left=True)
    expected = layer(x, mask)                                   # fairseq's own forward
    same_keys = layer(x, mask, key_value=x, key_padding_mask=mask)
    with_usage, received = layer(x, mask, need_received=True)
    real = ~mask.t()
    torch.testing.assert_close(same_keys[real], expected[real])
    torch.testing.assert_close(with_usage[real], expected[real])
    # every real query spreads one unit of attention per head over the keys
    torch.testing.assert_close(received.sum(0), HEADS * (~mask).sum(1).float())
    assert torch.equal(received[mask.t()], torch.zeros_like(received[mask.t()]))


def test_layer_reads_external_keys():
    layer = make_layer()
    x, memory = torch.randn(5, 2, D), torch.randn(7, 2, D)
    a = layer(x, None, key_value=memory)
    b = layer(x, None, key_value=memory * 2)
    assert not torch.allclose(a, b)


# ---------------------------------------------------------------------------------------------
# dense references, from each pattern's definition


def summary_cells(mask_row, l, s):
    """Positions of the last s real tokens of every block of l positions (one row)."""
    T = mask_row.numel()
    cells = []
    for start in range(0, T, l):
        real = [j for j in range(start, min(start + l, T)) if not mask_row[j]]
        cells += real[-s:]
    return set(cells)


def allowed_matrix(name, index, T, mask_row, p):
    """(T, T) bool: query i may attend to key j, by the definitions in modules/attention.py."""
    i = torch.arange(T)[:, None]
    j = torch.arange(T)[None, :]
    if name == "full":
        return torch.ones(T, T, dtype=torch.bool)
    if name == "blockwise":
        c = min(p.chunk_size, T)
        return i // c == j // c
    if name == "blockwise-memory":
        c = min(p.chunk_size, T)
        return (j // c == i // c) | (j // c == i // c - 1)
    l = p.attention_stride or math.ceil(math.sqrt(T))
    if index % 2 == 0:
        return i // l == j // l
    if name == "strided":
        return i % l == j % l
    cells = summary_cells(mask_row, l, min(p.fixed_summary_cells, l))
    return torch.tensor([[jj in cells for jj in range(T)] for _ in range(T)])


def compressed_keys(pattern, index, layer, x_row, mask_row, p):
    """Every chunk of one row compressed on its own: (N*m, 1, C), (1, N*m), owner chunk (N*m,)."""
    compressor = pattern.compressors[str(index)]
    T = x_row.size(0)
    c = min(p.chunk_size, T)
    slots, masks, owners = [], [], []
    for q, start in enumerate(range(0, T, c)):
        chunk = torch.zeros(c, 1, D)
        chunk_mask = torch.ones(1, c, dtype=torch.bool)
        stop = min(start + c, T)
        chunk[: stop - start, 0] = x_row[start:stop]
        chunk_mask[0, : stop - start] = mask_row[start:stop]
        if chunk_mask.all():
            continue                                           # a dead chunk has nothing to give
        if getattr(compressor, "needs_attention", False):
            _, usage = layer(chunk, chunk_mask, need_received=True)
            y, y_mask = compressor(chunk.transpose(0, 1), chunk_mask, usage.t())
        else:
            y, y_mask = compressor(chunk.transpose(0, 1), chunk_mask)
        slots.append(y.transpose(0, 1))
        masks.append(y_mask)
        owners += [q] * y.size(1)
    return torch.cat(slots), torch.cat(masks, 1), torch.tensor(owners)


def dense_reference(name, index, layer, pattern, x, mask, p):
    """Each row on the whole sequence with a dense (T, S) mask: output (T, B, C), usage (T, B)."""
    T, B, _ = x.shape
    outs, usages = [], []
    for b in range(B):
        x_b, mask_b = x[:, b:b + 1], mask[b:b + 1]
        allowed = allowed_matrix(name, index, T, mask[b], p)
        kv, kv_mask = x_b, mask_b
        if name == "blockwise-memory" and p.memory_compression != "none":
            c = min(p.chunk_size, T)
            N = math.ceil(T / c)
            M = N - 2 if p.compressed_memory_chunks == 0 else min(p.compressed_memory_chunks, N - 2)
            slots, slot_mask, owner = compressed_keys(pattern, index, layer, x[:, b], mask[b], p)
            query_chunk = torch.arange(T)[:, None] // c
            reads = (owner[None, :] <= query_chunk - 2) & (owner[None, :] >= query_chunk - 1 - M)
            allowed = torch.cat([allowed, reads], dim=1)
            kv, kv_mask = torch.cat([x_b, slots]), torch.cat([mask_b, slot_mask], 1)
        y, usage = layer(x_b, mask_b, attn_mask=~allowed, key_value=kv, key_padding_mask=kv_mask,
                         need_received=True)
        outs.append(y)
        usages.append(usage[:T])                               # usage of tokens, not of slots
    return torch.cat(outs, 1), torch.cat(usages, 1)


CASES = [
    # T, lengths, left padding, extra pattern flags, --encoder-normalize-before
    (23, [23, 17, 3], False, {}, False),
    (23, [23, 17, 3], True, {}, True),
    (40, [40, 9], True, {"attention_stride": 5}, False),
    (7, [7, 7], False, {"attention_stride": 3}, True),
    (30, [30, 30], False, {}, False),
    (1, [1], False, {}, True),
]


@pytest.mark.parametrize("T, lengths, left, flags, normalize_before", CASES)
@pytest.mark.parametrize("name, index, extra", [
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
])
def test_pattern_equals_dense_masked_reference(name, index, extra, T, lengths, left, flags,
                                               normalize_before):
    p = pattern_args(encoder_attention=name, chunk_size=6, **{**flags, **extra})
    torch.manual_seed(1)
    pattern = build_attention_pattern(p, D)
    pattern.eval()
    layer = make_layer(normalize_before)
    x = torch.randn(T, len(lengths), D)
    mask = padding(lengths, T, left)
    real = ~mask.t()                                             # (T, B)
    with torch.no_grad():
        ref, ref_usage = dense_reference(name, index, layer, pattern, x, mask, p)
        for given_mask in ([mask] if mask.any() else [mask, None]):
            out = pattern.run(layer, index, x, given_mask, need_received=False)
            torch.testing.assert_close(out.x[real], ref[real])
            assert out.received is None
            with_usage = pattern.run(layer, index, x, given_mask, need_received=True)
            torch.testing.assert_close(with_usage.x[real], ref[real])
            torch.testing.assert_close(with_usage.received[real], ref_usage[real])


@pytest.mark.parametrize("name, index, bound", [
    ("blockwise", 0, lambda T: 32),
    ("strided", 0, lambda T: math.ceil(math.sqrt(T))),
    ("strided", 1, lambda T: math.ceil(T / math.ceil(math.sqrt(T)))),
    ("fixed", 1, lambda T: 2 * math.ceil(T / math.ceil(math.sqrt(T)))),
    ("blockwise-memory", 0, lambda T: 2 * 32),
])
def test_no_pattern_computes_a_dense_problem(name, index, bound):
    T = 1024
    p = pattern_args(encoder_attention=name, chunk_size=32)
    pattern = build_attention_pattern(p, D)
    layer = make_layer()
    seen = []
    original = layer.self_attn.forward

    def spy(query, key, value, **kw):
        seen.append((query.size(0), key.size(0)))
        return original(query, key, value, **kw)

    layer.self_attn.forward = spy
    with torch.no_grad():
        pattern.run(layer, index, torch.randn(T, 1, D), None)
    assert seen and all(keys <= bound(T) and queries * keys < T * T // 8 for queries, keys in seen)


def test_memory_is_read_but_carries_no_gradient():
    p = pattern_args(encoder_attention="blockwise-memory", chunk_size=4)
    pattern = build_attention_pattern(p, D)
    layer = make_layer()
    x = torch.randn(12, 1, D, requires_grad=True)
    y = pattern.run(layer, 0, x, None).x
    # chunk 1 reads chunk 0 as memory (a random projection: a layer-normed row sums to a constant)
    (y[4:8] * torch.randn_like(y[4:8])).sum().backward()
    assert torch.equal(x.grad[:4], torch.zeros_like(x.grad[:4]))
    assert x.grad[4:8].abs().sum() > 0
    with torch.no_grad():
        other = x.clone()
        other[:4] += 1.0
        y2 = pattern.run(layer, 0, other, None).x
    assert not torch.allclose(y2[4:8], y[4:8])                  # ... but its values are read
    torch.testing.assert_close(y2[8:], y[8:])                   # chunk 2 sees only chunk 1


def memory_pattern(compression="conv", **kw):
    p = pattern_args(encoder_attention="blockwise-memory", chunk_size=4,
                     memory_compression=compression, **kw)
    torch.manual_seed(0)
    pattern = build_attention_pattern(p, D)
    pattern.train()
    return pattern


def test_reconstruction_loss_trains_only_the_compressor():
    pattern = memory_pattern("conv")
    layer = make_layer()
    layer.train()
    x = torch.randn(20, 2, D)
    out = pattern.run(layer, 1, x, padding([20, 11], 20, left=True))
    assert out.reconstruction_loss is not None and out.reconstruction_loss > 0
    out.reconstruction_loss.backward()
    compressor = pattern.compressors["1"]
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in compressor.parameters())
    assert all(p.grad is None for p in layer.parameters())      # the attention is frozen in it
    # the task loss reaches the compressor too, through the attention over its slots
    pattern.zero_grad()
    y = pattern.run(layer, 1, x, None).x
    (y * torch.randn_like(y)).sum().backward()
    assert all(p.grad.abs().sum() > 0 for p in compressor.parameters())


@pytest.mark.parametrize("T", [4, 8])   # one chunk; two chunks (memory, but nothing to compress)
def test_short_batches_keep_the_compressor_in_the_graph(T):
    pattern = memory_pattern("conv")
    layer = make_layer()
    out = pattern.run(layer, 0, torch.randn(T, 2, D), None)
    assert out.reconstruction_loss is not None and out.reconstruction_loss.item() == 0.0
    (out.x.sum() + out.reconstruction_loss).backward()
    assert all(p.grad is not None for p in pattern.compressors["0"].parameters())


@pytest.mark.parametrize("compression", ["avg", "most-used"])
def test_parameter_free_compression_reports_no_reconstruction_loss(compression):
    pattern = memory_pattern(compression)
    out = pattern.run(make_layer(), 0, torch.randn(20, 1, D), None)
    assert out.reconstruction_loss is None


def test_compressed_memory_cap_limits_the_keys():
    seen = []
    layer = make_layer()
    original = layer.self_attn.forward

    def spy(query, key, value, **kw):
        seen.append(key.size(0))
        return original(query, key, value, **kw)

    layer.self_attn.forward = spy
    T = 64                                                      # 16 chunks of 4, m = 1 slot each
    for cap, keys in [(0, 14 + 8), (3, 3 + 8)]:
        seen.clear()
        pattern = memory_pattern("avg", compressed_memory_chunks=cap)
        pattern.run(layer, 0, torch.randn(T, 1, D), None)
        assert seen == [keys]


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
    p = pattern_args(encoder_attention=name, **extra)
    pattern = build_attention_pattern(p, D)
    pattern.eval()
    layer = make_layer()
    x = torch.randn(T, 2, D)
    mask = padding([T, 0], T, left=False)
    with torch.no_grad():
        out = pattern.run(layer, index, x, mask, need_received=True)
        alone = pattern.run(layer, index, x[:, :1], None, need_received=True)
    assert torch.isfinite(out.x).all() and torch.isfinite(out.received).all()
    torch.testing.assert_close(out.x[:, 0], alone.x[:, 0])
    torch.testing.assert_close(out.received[:, 0], alone.received[:, 0])
