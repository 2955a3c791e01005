"""The pyramidion's encoder stack: layers under an attention pattern, pooling between them.

Shape legend (batch-first):
    B   batch     T   input length     C   channels     k_i  width after layer i (shrinks)

    x (B, T, C), mask (B, T)
      -> for each layer i: x = pattern(layer_i, i, x, mask)           (B, k_{i-1}, C)
                           if i pools: x, mask = pooler_i(x, mask)    (B, k_i, C), (B, k_i)
      -> PyramidOutput(x (B, k, C), mask (B, k), ...)

The layers, the pattern and the poolers are owned by the caller (the fairseq encoder keeps them
under its own parameter names); this function only runs them, so any framework's layers that
follow modules/layer.py's protocol can be stacked this way.
"""
from typing import List, Mapping, NamedTuple, Optional, Sequence

import torch
from torch import Tensor

from deep_pyramidion.modules.attention import AttentionPattern
from deep_pyramidion.modules.layer import EncoderLayer
from deep_pyramidion.modules.poolers import Pooled, Pooler


class PoolingRecord(NamedTuple):
    layer: int          # the encoder layer after which the pooler ran
    x: Tensor           # (B, n, C) its input
    mask: Tensor        # (B, n)
    pooled: Pooled      # its output, with the assignment


class PyramidOutput(NamedTuple):
    x: Tensor                                 # (B, k, C) after the last layer
    padding_mask: Tensor                      # (B, k)
    states: List[Tensor]                      # with keep_states: input, then every layer's output
    reconstruction_loss: Optional[Tensor]     # summed over layers (blockwise-memory, training)
    pooled: List[PoolingRecord]               # with record_pooling: every pooler's input/output


def run_pyramid(layers: Sequence[EncoderLayer], pattern: AttentionPattern,
                poolers: Mapping[str, Pooler], x: Tensor, mask: Tensor, layerdrop: float = 0.0,
                training: bool = False, keep_states: bool = False,
                record_pooling: bool = False) -> PyramidOutput:
    """Run the stack on x (B, T, C) with padding mask (B, T); ``poolers`` maps the index (as a
    string, as in an ``nn.ModuleDict``) of every layer that pools to its pooler."""
    states = [x] if keep_states else []
    losses, pooled = [], []
    for index, layer in enumerate(layers):
        pooler = poolers[str(index)] if str(index) in poolers else None
        # LayerDrop by hand: the index of a layer decides its pattern and its pooler
        dropped = training and layerdrop > 0 and torch.rand(()).item() < layerdrop
        usage = None
        if not dropped:
            out = pattern(layer, index, x, mask, need_usage=pooler is not None and pooler.needs_usage)
            x, usage = out.x, out.usage
            if out.reconstruction_loss is not None:
                losses.append(out.reconstruction_loss)
        if pooler is not None:
            result = pooler(x, mask, usage=usage, with_assignment=record_pooling)
            if record_pooling:
                pooled.append(PoolingRecord(index, x, mask, result))
            x, mask = result.x, result.mask                      # (B, k_i, C), (B, k_i)
        if keep_states:
            states.append(x)
    loss = torch.stack(losses).sum() if losses else None
    return PyramidOutput(x, mask, states, loss, pooled)
