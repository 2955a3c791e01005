"""fairseq's encoder layer as the core's patterns use it (fairseq_plugin/encoder_layer.py): the
extended path reproduces fairseq's own forward, reads external keys, reports usage; the batch-first
view gives the same results as the time-first layer; and every pattern run on fairseq's layer
equals its dense reference (the same references the unit tests use with a plain-torch layer)."""
import pytest
import torch
from fairseq.models.transformer import TransformerConfig

from deep_pyramidion.config import PyramidionConfig
from deep_pyramidion.fairseq_plugin.encoder_layer import BatchFirstLayer, PyramidionEncoderLayer
from deep_pyramidion.modules import build_attention_pattern
from tests.support.dense_attention import dense_reference, padding

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
    return PyramidionEncoderLayer(cfg).eval()


class DenseFairseqLayer(BatchFirstLayer):
    """The batch-first view plus the explicit-mask call the dense references need."""

    def dense(self, x, padding_mask, blocked, key_value, key_padding_mask):
        y, usage = self.layer(x.transpose(0, 1), padding_mask, attn_mask=blocked,
                              key_value=key_value.transpose(0, 1),
                              key_padding_mask=key_padding_mask, need_usage=True)
        return y.transpose(0, 1), usage.transpose(0, 1)


@pytest.mark.parametrize("normalize_before", [False, True])
def test_extended_layer_path_reproduces_fairseqs_forward(normalize_before):
    layer = make_layer(normalize_before)
    x = torch.randn(9, 3, D)
    mask = padding([9, 4, 1], 9, left=True)
    expected = layer(x, mask)                                   # fairseq's own forward
    same_keys = layer(x, mask, key_value=x, key_padding_mask=mask)
    with_usage, usage = layer(x, mask, need_usage=True)
    real = ~mask.t()
    torch.testing.assert_close(same_keys[real], expected[real])
    torch.testing.assert_close(with_usage[real], expected[real])
    # every real query spreads one unit of attention per head over the keys
    torch.testing.assert_close(usage.sum(0), HEADS * (~mask).sum(1).float())
    assert torch.equal(usage[mask.t()], torch.zeros_like(usage[mask.t()]))


def test_layer_reads_external_keys():
    layer = make_layer()
    x, memory = torch.randn(5, 2, D), torch.randn(7, 2, D)
    a = layer(x, None, key_value=memory)
    b = layer(x, None, key_value=memory * 2)
    assert not torch.allclose(a, b)


@pytest.mark.parametrize("with_keys", [False, True])
def test_batch_first_view_is_the_time_first_layer(with_keys):
    layer = make_layer()
    x, memory = torch.randn(3, 9, D), torch.randn(3, 5, D)
    mask = padding([9, 4, 1], 9, left=True)
    memory_mask = padding([5, 5, 2], 5, left=False)
    view = BatchFirstLayer(layer)
    kv = dict(key_value=memory, key_padding_mask=memory_mask) if with_keys else {}
    y, usage = view(x, mask, need_usage=True, **kv)
    tf = dict(key_value=memory.transpose(0, 1), key_padding_mask=memory_mask) if with_keys else {}
    y_tf, usage_tf = layer(x.transpose(0, 1), mask, need_usage=True, **tf)
    torch.testing.assert_close(y, y_tf.transpose(0, 1))
    torch.testing.assert_close(usage, usage_tf.transpose(0, 1))
    # no padding at all: fairseq gets no mask, and the result is the same as with an all-False one
    nomask = torch.zeros(3, 9, dtype=torch.bool)
    plain, none = view(x, nomask)
    assert none is None
    torch.testing.assert_close(plain, layer(x.transpose(0, 1), None).transpose(0, 1))


@pytest.mark.parametrize("name, index, extra", [
    ("full", 0, {}),
    ("blockwise", 0, {}),
    ("strided", 1, {}),
    ("fixed", 1, {}),
    ("blockwise-memory", 0, {"memory_compression": "conv"}),
    ("blockwise-memory", 1, {"memory_compression": "most-used", "memory_compression_rate": 2}),
])
@pytest.mark.parametrize("normalize_before", [False, True])
def test_pattern_on_fairseqs_layer_equals_dense_masked_reference(name, index, extra,
                                                                 normalize_before):
    cfg = PyramidionConfig(encoder_attention=name, chunk_size=6, fixed_summary_cells=2,
                           compression_taps=2, encoder_layers=2, **extra).validate()
    torch.manual_seed(1)
    pattern = build_attention_pattern(cfg, D).eval()
    layer = DenseFairseqLayer(make_layer(normalize_before))
    x = torch.randn(3, 23, D)
    mask = padding([23, 17, 3], 23, left=True)
    real = ~mask
    with torch.no_grad():
        ref, ref_usage = dense_reference(name, index, layer, pattern, x, mask, cfg)
        out = pattern(layer, index, x, mask, need_usage=True)
    torch.testing.assert_close(out.x[real], ref[real])
    torch.testing.assert_close(out.usage[real], ref_usage[real])


def test_frozen_attention_matches_the_attention_sublayer_and_trains_nothing():
    layer = make_layer()
    view = BatchFirstLayer(layer)
    q, kv = torch.randn(2, 4, D, requires_grad=True), torch.randn(2, 6, D)
    kv_mask = padding([6, 3], 6, left=False)
    out = view.frozen_attention(q, kv, kv_mask)
    expected, _ = layer.self_attn(query=q.transpose(0, 1), key=kv.transpose(0, 1),
                                  value=kv.transpose(0, 1), key_padding_mask=kv_mask,
                                  need_weights=False)
    torch.testing.assert_close(out, expected.transpose(0, 1))
    out.sum().backward()
    assert q.grad is not None and all(p.grad is None for p in layer.parameters())
