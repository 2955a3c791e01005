"""The encoder stack of the core (modules/pyramid.py) with plain-torch layers: widths shrink by the
schedule, masks follow, states and pooling records come back when asked, and LayerDrop skips a
layer but never its pooler."""
import pytest
import torch
import torch.nn as nn

from deep_pyramidion.config import PyramidionConfig
from deep_pyramidion.modules import build_attention_pattern, build_pooler, run_pyramid
from tests.support.dense_attention import padding
from tests.support.layers import TorchEncoderLayer

D = 16


def stack(**kw):
    config = PyramidionConfig(**{"encoder_layers": 3, "chunk_size": 8,
                                 "enc_layers_and_token_width": "{0: 20, 2: 6}", **kw}).validate()
    torch.manual_seed(0)
    layers = [TorchEncoderLayer(D, seed=i) for i in range(config.encoder_layers)]
    pattern = build_attention_pattern(config, D)
    poolers = nn.ModuleDict({str(i): build_pooler(config.pooling, D, w, config)
                             for i, w in config.schedule.items()})
    return layers, pattern, poolers


@pytest.mark.parametrize("pooling", ["topk", "hard-topk", "avg", "most-used", "seqpool"])
def test_widths_shrink_by_the_schedule(pooling):
    layers, pattern, poolers = stack(encoder_pooling=pooling)
    x, mask = torch.randn(2, 45, D), padding([45, 12], 45, left=True)
    out = run_pyramid(layers, pattern, poolers, x, mask, keep_states=True, record_pooling=True)
    assert out.x.shape == (2, 6, D) and out.padding_mask.shape == (2, 6)
    assert [s.size(1) for s in out.states] == [45, 20, 20, 6]     # input, then each layer
    assert [r.layer for r in out.pooled] == [0, 2]
    assert [r.x.size(1) for r in out.pooled] == [45, 20]
    assert all(r.pooled.assignment is not None for r in out.pooled)
    real = (~out.padding_mask).sum(1).tolist()
    if pooling in ("avg", "seqpool"):                               # windows: padding windows
        assert all(n >= 1 for n in real)                            # are masked, real ones kept
    else:
        assert real == [6, 6]                                       # 12 real tokens still >= 6
    assert out.reconstruction_loss is None


def test_short_batch_is_not_padded_up():
    layers, pattern, poolers = stack()
    out = run_pyramid(layers, pattern, poolers, torch.randn(1, 5, D),
                      torch.zeros(1, 5, dtype=torch.bool))
    assert out.x.shape == (1, 5, D)


def test_layerdrop_skips_layers_but_not_their_poolers():
    layers, pattern, poolers = stack()
    x, mask = torch.randn(1, 45, D), torch.zeros(1, 45, dtype=torch.bool)
    out = run_pyramid(layers, pattern, poolers, x, mask, layerdrop=1.0, training=True,
                      record_pooling=True)
    assert all(layer.calls == [] for layer in layers)
    assert out.x.shape == (1, 6, D)
    assert torch.equal(out.pooled[0].x, x)                          # layer 0 was dropped


def test_reconstruction_losses_of_the_layers_are_summed():
    layers, pattern, poolers = stack(encoder_attention="blockwise-memory", chunk_size=4,
                                     memory_compression="conv", enc_layers_and_token_width="{}")
    pattern.train()
    x, mask = torch.randn(1, 24, D), torch.zeros(1, 24, dtype=torch.bool)
    out = run_pyramid(layers, pattern, poolers, x, mask, training=True)
    per_layer = [pattern(layer, i, s, mask).reconstruction_loss
                 for i, (layer, s) in enumerate(zip(layers, run_pyramid(
                     layers, pattern, poolers, x, mask, training=True, keep_states=True).states))]
    torch.testing.assert_close(out.reconstruction_loss, torch.stack(per_layer).sum())
