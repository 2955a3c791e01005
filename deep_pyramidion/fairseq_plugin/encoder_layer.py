"""fairseq's encoder layer, able to read keys/values other than its queries and to report usage,
and the view of it that the core's attention patterns call (modules/layer.py's protocol).

Shape legend:
    T   queries (the layer's own tokens)       B   batch
    S   keys/values                            C   channels

``PyramidionEncoderLayer`` keeps fairseq's time-first contract: ``layer(x, encoder_padding_mask)``
is exactly ``TransformerEncoderLayerBase.forward`` (the ``full`` and ``blockwise`` patterns call
nothing else). Two keyword arguments extend it:

* ``key_value`` (S, B, C) + ``key_padding_mask`` (B, S): the queries attend to these states instead
  of to themselves (the fixed pattern's summary cells, the previous chunk's memory). ``key_value``
  is the *input* of the layer at those positions: with ``--encoder-normalize-before`` it goes
  through the same ``self_attn_layer_norm`` as the queries.
* ``need_usage=True``: also return the attention each key received, (S, B), summed over heads and
  over the real (non-padding) queries. The ``most-used`` pooler ranks tokens by it.

Only the attention call differs from fairseq's; the residual, layer norm and feed-forward half is
fairseq's own structure, written out once in :meth:`_feed_forward` (a test checks that the extended
path reproduces fairseq's forward, so the two cannot drift apart unnoticed).

:class:`BatchFirstLayer` is the only place where fairseq's time-first layout meets the core's
batch-first one.
"""
from typing import Optional, Tuple

import torch
import torch.nn.functional as F
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
        need_usage: bool = False,
    ):
        if key_value is None and not need_usage:
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
            need_weights=need_usage, attn_mask=attn_mask,
        )
        usage = None
        if need_usage:
            # weights: (B, T, S), the mean over heads; usage is the sum over heads and real queries.
            # Detached: usage only ranks tokens, it is not differentiated.
            weights = weights.detach().float() * self.self_attn.num_heads
            if encoder_padding_mask is not None:
                weights = weights.masked_fill(encoder_padding_mask.unsqueeze(-1), 0.0)
            usage = weights.sum(dim=1).transpose(0, 1)                         # (S, B)
        x = self.dropout_module(x)
        x = self.residual_connection(x, residual)
        if not self.normalize_before:
            x = self.self_attn_layer_norm(x)
        x = self._feed_forward(x)
        return (x, usage) if need_usage else x

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

    def frozen_attention(self, query: Tensor, kv: Tensor, kv_mask: Tensor) -> Tensor:
        """The attention sublayer's output (T, B, C) with every parameter detached and no dropout.

        The attention-reconstruction loss must train only the compression network (the
        Compressive Transformer stops its gradient into the attention), so the layer's weights
        enter as constants.
        """
        attn = self.self_attn
        if self.normalize_before:
            norm = self.self_attn_layer_norm
            query = F.layer_norm(query, norm.normalized_shape, norm.weight.detach(),
                                 norm.bias.detach(), norm.eps)
            kv = F.layer_norm(kv, norm.normalized_shape, norm.weight.detach(), norm.bias.detach(),
                              norm.eps)
        in_bias = torch.cat([attn.q_proj.bias, attn.k_proj.bias, attn.v_proj.bias]).detach()
        out, _ = F.multi_head_attention_forward(
            query, kv, kv, attn.embed_dim, attn.num_heads, None, in_bias,
            None if attn.bias_k is None else attn.bias_k.detach(),
            None if attn.bias_v is None else attn.bias_v.detach(),
            attn.add_zero_attn, 0.0, attn.out_proj.weight.detach(), attn.out_proj.bias.detach(),
            training=False, key_padding_mask=kv_mask, need_weights=False,
            use_separate_proj_weight=True, q_proj_weight=attn.q_proj.weight.detach(),
            k_proj_weight=attn.k_proj.weight.detach(), v_proj_weight=attn.v_proj.weight.detach(),
        )
        return out

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


class BatchFirstLayer:
    """A fairseq encoder layer (possibly wrapped for activation checkpointing or FSDP) seen
    through the core's batch-first protocol (modules/layer.py). Holds no parameters."""

    __slots__ = ("layer",)

    def __init__(self, layer):
        self.layer = layer

    def __call__(self, x: Tensor, padding_mask: Tensor, key_value: Optional[Tensor] = None,
                 key_padding_mask: Optional[Tensor] = None, need_usage: bool = False
                 ) -> Tuple[Tensor, Optional[Tensor]]:
        # fairseq's attention skips the masking work when it gets no mask: drop an all-real one
        mask = padding_mask if padding_mask.any() else None
        x_tf = x.transpose(0, 1).contiguous()                                 # (T, B, C)
        if key_value is None and not need_usage:
            return self.layer(x_tf, encoder_padding_mask=mask).transpose(0, 1), None
        kwargs = {"need_usage": True} if need_usage else {}
        if key_value is not None:
            kwargs.update(key_value=key_value.transpose(0, 1).contiguous(),  # (S, B, C)
                          key_padding_mask=key_padding_mask)
        out = self.layer(x_tf, encoder_padding_mask=mask, **kwargs)
        if not need_usage:
            return out.transpose(0, 1), None
        y, usage = out
        return y.transpose(0, 1), usage.transpose(0, 1)                       # (B, T, C), (B, S)

    def frozen_attention(self, query: Tensor, key_value: Tensor, key_padding_mask: Tensor) -> Tensor:
        out = self.layer.frozen_attention(query.transpose(0, 1), key_value.transpose(0, 1),
                                          key_padding_mask)
        return out.transpose(0, 1)                                            # (B, T, C)
