"""fairseq's encoder layer, able to read keys/values other than its queries and to report usage.

Shape legend (fairseq's time-first layout):
    T   queries (the layer's own tokens)       B   batch
    S   keys/values                            C   channels

``layer(x, encoder_padding_mask)`` is exactly fairseq's ``TransformerEncoderLayerBase.forward``
(the ``full`` and ``blockwise`` patterns call nothing else). Two keyword arguments extend it:

* ``key_value`` (S, B, C) + ``key_padding_mask`` (B, S): the queries attend to these states instead
  of to themselves. The fixed pattern's summary cells and the previous chunk's memory are such
  states; the caller concatenates the queries' own states when they should be visible too.
  ``key_value`` is the *input* of the layer at those positions: with ``--encoder-normalize-before``
  it goes through the same ``self_attn_layer_norm`` as the queries.
* ``need_received=True``: also return the attention each key received, (S, B), summed over heads
  and over the real (non-padding) queries. The ``most-used`` pooler ranks tokens by it.

Only the attention call differs from fairseq's; the residual, layer norm and feed-forward half is
fairseq's own structure, written out once in :meth:`_feed_forward` (a test checks that the extended
path reproduces fairseq's forward, so the two cannot drift apart unnoticed).
"""
from typing import Optional

import torch
from torch import Tensor

from fairseq.modules.transformer_layer import TransformerEncoderLayerBase


class PyramidionEncoderLayer(TransformerEncoderLayerBase):
    """``TransformerEncoderLayerBase`` + external keys/values + attention received per key."""

    def forward(
        self,
        x: Tensor,
        encoder_padding_mask: Optional[Tensor],
        attn_mask: Optional[Tensor] = None,
        key_value: Optional[Tensor] = None,
        key_padding_mask: Optional[Tensor] = None,
        need_received: bool = False,
    ):
        if key_value is None and not need_received:
            return super().forward(x, encoder_padding_mask, attn_mask)
        if self.return_fc:
            raise NotImplementedError("return_fc is not supported with external keys or usage")
        if key_value is not None:
            self._check_reads_keys(x)
        if attn_mask is not None and attn_mask.dtype == torch.bool:
            # like fairseq: a large finite value, not -inf, so a fully masked row stays finite
            attn_mask = torch.zeros_like(attn_mask, dtype=x.dtype).masked_fill(
                attn_mask, -1e8 if x.dtype == torch.float32 else -1e4)

        residual = x
        if self.normalize_before:
            x = self.self_attn_layer_norm(x)
        if key_value is None:
            key_value, key_padding_mask = x, encoder_padding_mask
        elif self.normalize_before:
            key_value = self.self_attn_layer_norm(key_value)
        x, weights = self.self_attn(
            query=x, key=key_value, value=key_value, key_padding_mask=key_padding_mask,
            need_weights=need_received, attn_mask=attn_mask,
        )
        received = None
        if need_received:
            # weights: (B, T, S), the mean over heads; usage is the sum over heads and real queries.
            # Detached: usage only ranks tokens, it is not differentiated.
            weights = weights.detach().float() * self.self_attn.num_heads
            if encoder_padding_mask is not None:
                weights = weights.masked_fill(encoder_padding_mask.unsqueeze(-1), 0.0)
            received = weights.sum(dim=1).transpose(0, 1)                      # (S, B)
        x = self.dropout_module(x)
        x = self.residual_connection(x, residual)
        if not self.normalize_before:
            x = self.self_attn_layer_norm(x)
        x = self._feed_forward(x)
        return (x, received) if need_received else x

    def _feed_forward(self, x: Tensor) -> Tensor:
        residual = x
        if self.normalize_before:
            x = self.final_layer_norm(x)
        x = self.activation_fn(self.fc1(x))
        x = self.activation_dropout_module(x)
        x = self.fc2(x)
        x = self.dropout_module(x)
        x = self.residual_connection(x, residual)
        if not self.normalize_before:
            x = self.final_layer_norm(x)
        return x

    def _check_reads_keys(self, x: Tensor) -> None:
        # fairseq's MultiheadAttention(self_attention=True) projects keys from the *query* on its
        # slow path (ONNX tracing, XLA, pruned heads); only the torch/xformers path reads `key`.
        # Computing the wrong attention silently would be worse than refusing.
        attn = self.self_attn
        if attn.onnx_trace or attn.skip_embed_dim_check or x.device.type == "xla" \
                or torch.jit.is_scripting():
            raise RuntimeError(
                "this attention pattern needs fairseq's MultiheadAttention fast path (it reads "
                "separate keys/values); ONNX tracing, XLA and pruned heads are not supported")
