"""What the core needs from an encoder layer: one call, batch-first, and its frozen attention.

Shape legend (batch-first):
    B   batch (for blockwise patterns: the live chunks)      T   queries      C   channels
    S   keys/values given explicitly (default: the queries themselves)

The attention patterns (modules/attention.py, modules/memory.py) run any layer that follows
:class:`EncoderLayer`; the fairseq adapter wraps fairseq's encoder layer this way
(fairseq_plugin/encoder_layer.py), and another framework's layer can be wrapped the same way.
"""
from typing import NamedTuple, Optional, Protocol, Tuple

from torch import Tensor


class EncoderLayer(Protocol):
    def __call__(self, x: Tensor, padding_mask: Tensor, key_value: Optional[Tensor] = None,
                 key_padding_mask: Optional[Tensor] = None, need_usage: bool = False
                 ) -> Tuple[Tensor, Optional[Tensor]]:
        """x (B, T, C), padding_mask (B, T) True = padding -> y (B, T, C), usage (B, S) or None.

        With ``key_value`` (B, S, C) + ``key_padding_mask`` (B, S) the queries attend to these
        states (the layer's *input* at those positions) instead of to themselves. With
        ``need_usage`` the layer also returns the attention each key received, summed over heads
        and over the real queries, detached (the ``most-used`` pooler ranks tokens by it).
        """

    def frozen_attention(self, query: Tensor, key_value: Tensor, key_padding_mask: Tensor) -> Tensor:
        """The layer's attention sublayer output (B, T, C) for query (B, T, C) over key_value
        (B, S, C), with every parameter detached and no dropout: the attention-reconstruction
        loss of the compressed memory must train the compressor only."""


class LayerOutput(NamedTuple):
    x: Tensor                                     # (B, T, C)
    usage: Optional[Tensor] = None                # (B, T) attention each token received
    reconstruction_loss: Optional[Tensor] = None  # () attention-reconstruction loss (memory)
