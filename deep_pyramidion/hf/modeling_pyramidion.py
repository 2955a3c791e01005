"""The pyramidion as a Hugging Face model: ``PyramidionForConditionalGeneration``.

Shape legend (batch-first, as in the core):
    B   batch (documents)                            T   source tokens      C   channels (d_model)
    N   decoder rows: B, or B x G inside generate() (G = beams or returned sequences per document)
    k   encoder positions after the last pooling    L   target tokens this call    P  cached ones
    H   heads                                        d   channels per head (C / H)

    input_ids (B, T) -> embeddings + positions (fairseq's numbering: pad + 1 on, padding skipped)
      -> the core's pyramid (modules/pyramid.py): each layer under the --encoder-attention pattern,
         pooling after the layers of the schedule                       (B, k, C), mask (B, k)
      -> final layer norm (pre-norm models)
    encoder output: last_hidden_state (B, k, C) + encoder_attention_mask (B, k), 1 = real
    decoder_input_ids (N, L) -> fairseq's transformer decoder, cross-attending to the k positions
      -> LM head (N, L, vocab)

Why the encoder output carries its own mask: generate() hands the forward the input-length
``attention_mask`` (B, T) at every step, but the decoder reads k pooled positions, whose padding
only the encoder knows. The mask is a field of the encoder output and travels with it. The
input-length mask is used only by the encoder.

One encoder output per document in generate(), as in fairseq's pyramidion decoder: generate()
would repeat the encoder output once per beam, and every beam would then project and attend to its
own copy of the k positions. The model keeps it per document (``_expand_inputs_for_generation``);
the decoder's rows are the G consecutive rows of each document, whose cross-attention keys/values
are projected once per document and attended with the G x L queries of the document together
(``Attention.attend_per_document``), and cached once per document (``DocumentCrossAttention``).

Parameter names follow fairseq's (``model.encoder.layers.0.self_attn.q_proj.weight`` is fairseq's
``encoder.layers.0.self_attn.q_proj.weight``), so the exporter's mapping is a prefix and the
poolers and memory compressors are the core's own modules under their fairseq names.
"""
import math
from dataclasses import dataclass
from typing import Optional, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor
from transformers import GenerationMixin, PreTrainedModel
from transformers.cache_utils import DynamicCache, DynamicLayer, EncoderDecoderCache
from transformers.generation.logits_process import ForcedEOSTokenLogitsProcessor, LogitsProcessor
from transformers.modeling_outputs import BaseModelOutput, Seq2SeqLMOutput

from deep_pyramidion.hf.configuration_pyramidion import PyramidionHFConfig
from deep_pyramidion.modules import build_attention_pattern, build_pooler, run_pyramid
from deep_pyramidion.modules.poolers.selection import selection_labels, selection_loss

# transformers 5.25 renamed the generation cache argument and output field from past_key_values to
# cache; the forward accepts both and answers under the name this version reads
CACHE_FIELD = "cache" if "cache" in Seq2SeqLMOutput.__dataclass_fields__ else "past_key_values"


# ---------------------------------------------------------------------------------- positions
def fairseq_positions(padding: Tensor, pad: int, past: int = 0) -> Tensor:
    """fairseq's ``make_positions``: real tokens numbered pad+1, pad+2, ... (after ``past`` cached
    ones), padding gets ``pad``. Left and right padding give a document the same numbers."""
    real = (~padding).long()                                              # (B, L)
    return (torch.cumsum(real, dim=1) + past) * real + pad


def sinusoidal_table(rows: int, dim: int, pad: int) -> Tensor:
    """fairseq's SinusoidalPositionalEmbedding table (rows, dim): sines then cosines, zero row at
    the padding index (tensor2tensor's layout, not the interleaved one of the paper)."""
    half = dim // 2
    step = math.log(10000) / (half - 1)
    freq = torch.exp(torch.arange(half, dtype=torch.float) * -step)
    angle = torch.arange(rows, dtype=torch.float).unsqueeze(1) * freq.unsqueeze(0)
    table = torch.cat([torch.sin(angle), torch.cos(angle)], dim=1).view(rows, -1)
    if dim % 2 == 1:
        table = torch.cat([table, torch.zeros(rows, 1)], dim=1)
    table[pad, :] = 0
    return table


class SinusoidalPositions(nn.Module):
    """No parameters (nothing in the state dict, as in fairseq); the table grows with the input,
    so a model trained on 2048 tokens reads 8192. The table is a plain attribute, not a buffer:
    transformers 5 creates a model's buffers empty and expects them initialised again."""

    def __init__(self, dim: int, pad: int):
        super().__init__()
        self.dim, self.pad = dim, pad
        self._table: Optional[Tensor] = None

    def forward(self, positions: Tensor) -> Tensor:
        needed = max(int(positions.max()) + 1, self.pad + 1 + 1024)
        table = self._table
        if table is None or table.size(0) < needed or table.device != positions.device:
            table = sinusoidal_table(needed, self.dim, self.pad).to(positions.device)
            self._table = table
        return table[positions]                                             # (B, L, C)


class LearnedPositions(nn.Embedding):
    """fairseq's (and BART's) learned positions: max_positions + pad + 1 rows, real tokens from
    row pad + 1 = 2."""

    def __init__(self, max_positions: int, dim: int, pad: int):
        super().__init__(max_positions + pad + 1, dim, padding_idx=pad)


def build_positions(config: PyramidionHFConfig, learned: bool, max_positions: int) -> nn.Module:
    if learned:
        return LearnedPositions(max_positions, config.encoder_embed_dim, config.pad_token_id)
    return SinusoidalPositions(config.encoder_embed_dim, config.pad_token_id)


def activation(name: str):
    if name == "relu":
        return F.relu
    if name == "relu_squared":
        return lambda x: F.relu(x).pow(2)
    if name == "gelu":            # fairseq computes it in float32
        return lambda x: F.gelu(x.float()).type_as(x)
    if name in ("gelu_accurate", "gelu_fast"):
        return lambda x: F.gelu(x, approximate="tanh")
    if name == "tanh":
        return torch.tanh
    if name == "linear":
        return lambda x: x
    raise ValueError(f"activation_fn: {name!r} is not supported")


# ---------------------------------------------------------------------------------- attention
class Attention(nn.Module):
    """fairseq's MultiheadAttention parameters (q_proj, k_proj, v_proj, out_proj), batch-first."""

    def __init__(self, dim: int, heads: int, dropout: float):
        super().__init__()
        if dim % heads:
            raise ValueError(f"{dim} channels do not split into {heads} heads")
        self.heads, self.head_dim, self.dropout = heads, dim // heads, dropout
        self.q_proj = nn.Linear(dim, dim)
        self.k_proj = nn.Linear(dim, dim)
        self.v_proj = nn.Linear(dim, dim)
        self.out_proj = nn.Linear(dim, dim)

    def split(self, x: Tensor) -> Tensor:
        B, L, _ = x.shape
        return x.view(B, L, self.heads, self.head_dim).transpose(1, 2)      # (B, H, L, d)

    def project_kv(self, kv: Tensor) -> Tuple[Tensor, Tensor]:
        return self.split(self.k_proj(kv)), self.split(self.v_proj(kv))

    def attend(self, x: Tensor, k: Tensor, v: Tensor, allowed: Optional[Tensor],
               need_weights: bool = False) -> Tuple[Tensor, Optional[Tensor]]:
        """x (B, L, C) queries over k, v (B, H, S, d); allowed broadcasts to (B, H, L, S), True =
        may attend. Returns (B, L, C) and, with need_weights, the weights (B, H, L, S)."""
        q = self.split(self.q_proj(x))                                      # (B, H, L, d)
        p = self.dropout if self.training else 0.0
        if need_weights:
            scores = torch.matmul(q * self.head_dim ** -0.5, k.transpose(-1, -2))
            if allowed is not None:
                scores = scores.masked_fill(~allowed, float("-inf"))
            weights = F.softmax(scores.float(), dim=-1).type_as(scores)
            out = torch.matmul(F.dropout(weights, p, self.training), v)
        else:
            weights = None
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=allowed, dropout_p=p)
        B, _, L, _ = out.shape
        return self.out_proj(out.transpose(1, 2).reshape(B, L, -1)), weights

    def attend_per_document(self, x: Tensor, k: Tensor, v: Tensor,
                            allowed: Optional[Tensor]) -> Tensor:
        """x (N, L, C) queries over k, v (B, H, S, d) of B documents, N = B x G: rows i G to
        (i + 1) G - 1 are document i's (generate()'s order). A document's G x L queries attend to
        its one copy of the keys together; allowed broadcasts to (B, H, 1, S). Returns (N, L, C)."""
        N, L, C = x.shape
        B = k.size(0)
        if N == B:
            return self.attend(x, k, v, allowed)[0]
        if N % B:
            raise ValueError(f"{N} decoder rows do not split into the {B} documents of the "
                             "encoder output")
        out, _ = self.attend(x.reshape(B, (N // B) * L, C), k, v, allowed)
        return out.view(N, L, C)


def key_mask(padding: Optional[Tensor]) -> Optional[Tensor]:
    """(B, S) True = padding -> (B, 1, 1, S) True = may attend; None when nothing is padding."""
    if padding is None or not bool(padding.any()):
        return None
    return (~padding)[:, None, None, :]


# ---------------------------------------------------------------------------------- encoder
class EncoderLayer(nn.Module):
    """fairseq's TransformerEncoderLayer (same parameter names) under the core's layer protocol
    (modules/layer.py): ``layer(x, padding_mask, key_value=None, key_padding_mask=None,
    need_usage=False) -> (y, usage)``, batch-first."""

    def __init__(self, config: PyramidionHFConfig):
        super().__init__()
        dim = config.encoder_embed_dim
        self.self_attn = Attention(dim, config.encoder_attention_heads, config.attention_dropout)
        self.self_attn_layer_norm = nn.LayerNorm(dim)
        self.fc1 = nn.Linear(dim, config.encoder_ffn_embed_dim)
        self.fc2 = nn.Linear(config.encoder_ffn_embed_dim, dim)
        self.final_layer_norm = nn.LayerNorm(dim)
        self.normalize_before = bool(config.encoder_normalize_before)
        self.activation_fn = activation(config.activation_fn)
        self.dropout, self.activation_dropout = config.dropout, config.activation_dropout

    def forward(self, x: Tensor, padding_mask: Tensor, key_value: Optional[Tensor] = None,
                key_padding_mask: Optional[Tensor] = None, need_usage: bool = False):
        residual = x
        if self.normalize_before:
            x = self.self_attn_layer_norm(x)
        if key_value is None:
            kv, kv_padding = x, padding_mask
        else:
            # key_value is the layer's input at those positions: normalized like the queries
            kv = self.self_attn_layer_norm(key_value) if self.normalize_before else key_value
            kv_padding = key_padding_mask
        k, v = self.self_attn.project_kv(kv)
        x, weights = self.self_attn.attend(x, k, v, key_mask(kv_padding), need_weights=need_usage)
        usage = None
        if need_usage:
            # attention each key received: summed over heads and over the real queries, detached
            w = weights.detach().float().sum(dim=1)                         # (B, T, S)
            usage = w.masked_fill(padding_mask.unsqueeze(-1), 0.0).sum(dim=1)  # (B, S)
        x = residual + F.dropout(x, self.dropout, self.training)
        if not self.normalize_before:
            x = self.self_attn_layer_norm(x)
        residual = x
        if self.normalize_before:
            x = self.final_layer_norm(x)
        x = F.dropout(self.activation_fn(self.fc1(x)), self.activation_dropout, self.training)
        x = residual + F.dropout(self.fc2(x), self.dropout, self.training)
        if not self.normalize_before:
            x = self.final_layer_norm(x)
        return x, usage

    def frozen_attention(self, query: Tensor, key_value: Tensor, key_padding_mask: Tensor) -> Tensor:
        """The attention sublayer (B, T, C) with every parameter detached and no dropout: the
        compressed memory's reconstruction loss trains the compressor only."""
        if self.normalize_before:
            norm = self.self_attn_layer_norm
            query, key_value = (F.layer_norm(t, norm.normalized_shape, norm.weight.detach(),
                                             norm.bias.detach(), norm.eps)
                                for t in (query, key_value))
        a = self.self_attn

        def proj(layer, t):
            return a.split(F.linear(t, layer.weight.detach(), layer.bias.detach()))

        q, k, v = proj(a.q_proj, query), proj(a.k_proj, key_value), proj(a.v_proj, key_value)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=key_mask(key_padding_mask))
        B, _, T, _ = out.shape
        out = out.transpose(1, 2).reshape(B, T, -1)
        return F.linear(out, a.out_proj.weight.detach(), a.out_proj.bias.detach())


@dataclass
class PyramidionEncoderOutput(BaseModelOutput):
    """BaseModelOutput + the padding of the k pooled positions, (B, k) long, 1 = real token;
    with selection labels (training, selection_loss=1), the scorers' selection loss (0-dim)."""

    encoder_attention_mask: Optional[torch.LongTensor] = None
    selection_loss: Optional[torch.FloatTensor] = None


class PyramidionEncoder(nn.Module):
    def __init__(self, config: PyramidionHFConfig, embed_tokens: nn.Embedding):
        super().__init__()
        core = config.pyramidion_config()
        dim = config.encoder_embed_dim
        self.config = config
        self.pad = config.pad_token_id
        self.embed_scale = config.embed_scale
        self.embed_tokens = embed_tokens
        self.embed_positions = build_positions(config, config.encoder_learned_pos,
                                               config.max_source_positions)
        self.layernorm_embedding = nn.LayerNorm(dim) if config.layernorm_embedding else None
        self.layers = nn.ModuleList([EncoderLayer(config) for _ in range(config.encoder_layers)])
        self.attention_pattern = build_attention_pattern(core, dim)
        self.poolers = nn.ModuleDict({str(layer): build_pooler(core.pooling, dim, width, core)
                                      for layer, width in core.schedule.items()})
        self.layer_norm = nn.LayerNorm(dim) if config.encoder_final_norm else None
        self.layerdrop = config.encoder_layerdrop
        self.gradient_checkpointing = False

    def forward(self, input_ids: Tensor, attention_mask: Optional[Tensor] = None,
                output_hidden_states: Optional[bool] = None, return_dict: Optional[bool] = None,
                selection_labels: Optional[Tensor] = None, **kwargs) -> PyramidionEncoderOutput:
        """``selection_labels`` (B, T) float, 1 = the target uses this token: with them the
        output holds the scorers' selection loss (modules/poolers/selection.py)."""
        padding = input_ids.eq(self.pad)                                    # (B, T)
        if attention_mask is not None:
            padding = padding | ~attention_mask.bool()
        limit = self.config.max_source_positions
        if self.config.encoder_learned_pos and input_ids.size(1) > limit:
            raise ValueError(f"{input_ids.size(1)} source tokens, but the model has {limit} "
                             "learned positions: truncate the input (tokenizer truncation=True)")
        x = self.embed_scale * self.embed_tokens(input_ids)
        x = x + self.embed_positions(fairseq_positions(padding, self.pad)).to(x.dtype)
        if self.layernorm_embedding is not None:
            x = self.layernorm_embedding(x)
        x = F.dropout(x, self.config.dropout, self.training)
        x = x.masked_fill(padding.unsqueeze(-1), 0.0)
        layers = [self._checkpointed(layer) for layer in self.layers] \
            if self.gradient_checkpointing and self.training else self.layers
        # the poolers' inputs and assignments are kept only for the selection loss
        out = run_pyramid(layers, self.attention_pattern, self.poolers, x, padding,
                          layerdrop=self.layerdrop, training=self.training,
                          keep_states=bool(output_hidden_states),
                          record_pooling=selection_labels is not None)
        x = out.x                                                           # (B, k, C)
        if self.layer_norm is not None:
            x = self.layer_norm(x)
        return PyramidionEncoderOutput(
            last_hidden_state=x, hidden_states=tuple(out.states) if output_hidden_states else None,
            encoder_attention_mask=(~out.padding_mask).long(),
            selection_loss=None if selection_labels is None else
            selection_loss(out.pooled, self.poolers, selection_labels))

    @staticmethod
    def _checkpointed(layer):
        """The layer recomputed in the backward pass (Trainer's gradient_checkpointing)."""
        from torch.utils.checkpoint import checkpoint

        class Checkpointed:
            def __call__(self, x, mask, key_value=None, key_padding_mask=None, need_usage=False):
                return checkpoint(layer, x, mask, key_value, key_padding_mask, need_usage,
                                  use_reentrant=False)

            def frozen_attention(self, *args):
                return layer.frozen_attention(*args)

        return Checkpointed()


# ---------------------------------------------------------------------------------- decoder
class DocumentCrossAttention(DynamicLayer):
    """One decoder layer's cross-attention keys/values in the EncoderDecoderCache: one row per
    document (B, H, k, d) while the decoder runs ``rows`` = B x G rows (G consecutive rows per
    document). Beam search moves a row only among the beams of its document, which share the
    document's row, so a reorder changes nothing here; it is checked, so that a reorder across
    documents fails instead of pairing a row with another document's keys. Repeating or selecting
    decoder rows (contrastive search) keeps the documents whose rows remain."""

    def __init__(self, keys: Tensor, values: Tensor, rows: int):
        super().__init__()
        self.lazy_initialization(keys, values)
        self.keys, self.values, self.rows = keys, values, rows

    def _document(self, rows: Tensor) -> Tensor:
        return rows // (self.rows // self.keys.size(0))

    def reorder_cache(self, beam_idx: Tensor) -> None:
        beam_idx = beam_idx.to(self.keys.device)
        same = torch.arange(self.rows, device=beam_idx.device)
        if beam_idx.numel() != self.rows or \
                not bool(self._document(beam_idx).eq(self._document(same)).all()):
            raise ValueError("a cache reorder moved decoder rows to another document's rows; the "
                             "cross-attention keys/values are kept once per document")

    def batch_repeat_interleave(self, repeats: int) -> None:
        self.rows *= repeats

    def batch_select_indices(self, indices: Tensor) -> None:
        rows = torch.arange(self.rows, device=self.keys.device)[indices.to(self.keys.device)]
        documents, counts = torch.unique_consecutive(self._document(rows), return_counts=True)
        if bool(documents.diff().le(0).any()) or bool(counts.ne(counts[0]).any()):
            raise ValueError("a row selection that keeps documents in another order or with "
                             "different numbers of rows; the cross-attention keys/values are kept "
                             "once per document")
        self.keys, self.values = self.keys[documents], self.values[documents]
        self.rows = rows.numel()


def _cross_cache(cache: EncoderDecoderCache, index: int) -> Optional[Tuple[Tensor, Tensor]]:
    """The cross-attention keys/values cached for layer ``index``, if computed already."""
    if not cache.is_updated.get(index):
        return None
    cross = cache.cross_attention_cache
    if hasattr(cross, "layers"):                      # transformers >= 4.56
        return cross.layers[index].keys, cross.layers[index].values
    return cross.key_cache[index], cross.value_cache[index]  # pragma: no cover


def _cache_cross(cache: EncoderDecoderCache, index: int, k: Tensor, v: Tensor, rows: int):
    """Keep layer ``index``'s cross-attention keys/values (B, H, k, d) for the next steps."""
    cross = cache.cross_attention_cache
    if hasattr(cross, "layers"):
        # the update makes the layer's place in the cache (empty: nothing copied), which then
        # holds the per-document keys/values
        cross.update(k[:, :, :0], v[:, :, :0], index)
        cross.layers[index] = DocumentCrossAttention(k, v, rows)
    else:                                             # pragma: no cover
        cross.update(k, v, index)
    cache.is_updated[index] = True


class DecoderLayer(nn.Module):
    """fairseq's TransformerDecoderLayer (same parameter names), batch-first, with the
    self-attention keys/values and the cross-attention keys/values in an EncoderDecoderCache."""

    def __init__(self, config: PyramidionHFConfig, index: int):
        super().__init__()
        dim = config.encoder_embed_dim
        self.index = index
        self.self_attn = Attention(dim, config.decoder_attention_heads, config.attention_dropout)
        self.self_attn_layer_norm = nn.LayerNorm(dim)
        self.encoder_attn = Attention(dim, config.decoder_attention_heads, config.attention_dropout)
        self.encoder_attn_layer_norm = nn.LayerNorm(dim)
        self.fc1 = nn.Linear(dim, config.decoder_ffn_embed_dim)
        self.fc2 = nn.Linear(config.decoder_ffn_embed_dim, dim)
        self.final_layer_norm = nn.LayerNorm(dim)
        self.normalize_before = bool(config.decoder_normalize_before)
        self.activation_fn = activation(config.activation_fn)
        self.dropout, self.activation_dropout = config.dropout, config.activation_dropout

    def forward(self, x: Tensor, self_allowed: Optional[Tensor], memory: Tensor,
                memory_allowed: Optional[Tensor], cache: Optional[EncoderDecoderCache]) -> Tensor:
        residual = x
        h = self.self_attn_layer_norm(x) if self.normalize_before else x
        k, v = self.self_attn.project_kv(h)                                 # (B, H, L, d)
        if cache is not None:
            k, v = cache.self_attention_cache.update(k, v, self.index)      # (B, H, P+L, d)
        h, _ = self.self_attn.attend(h, k, v, self_allowed)
        x = residual + F.dropout(h, self.dropout, self.training)
        if not self.normalize_before:
            x = self.self_attn_layer_norm(x)

        residual = x
        h = self.encoder_attn_layer_norm(x) if self.normalize_before else x
        cached = _cross_cache(cache, self.index) if cache is not None else None
        if cached is None:
            # the k encoder positions of each document are projected once per generate() call,
            # then reused
            ck, cv = self.encoder_attn.project_kv(memory)                   # (B, H, k, d)
            if cache is not None:
                _cache_cross(cache, self.index, ck, cv, rows=x.size(0))
        else:
            ck, cv = cached
        h = self.encoder_attn.attend_per_document(h, ck, cv, memory_allowed)
        x = residual + F.dropout(h, self.dropout, self.training)
        if not self.normalize_before:
            x = self.encoder_attn_layer_norm(x)

        residual = x
        h = self.final_layer_norm(x) if self.normalize_before else x
        h = F.dropout(self.activation_fn(self.fc1(h)), self.activation_dropout, self.training)
        x = residual + F.dropout(self.fc2(h), self.dropout, self.training)
        if not self.normalize_before:
            x = self.final_layer_norm(x)
        return x


class PyramidionDecoder(nn.Module):
    def __init__(self, config: PyramidionHFConfig, embed_tokens: nn.Embedding):
        super().__init__()
        dim = config.encoder_embed_dim
        self.config = config
        self.pad = config.pad_token_id
        self.embed_scale = config.embed_scale
        self.embed_tokens = embed_tokens
        self.embed_positions = build_positions(config, config.decoder_learned_pos,
                                               config.max_target_positions)
        self.layernorm_embedding = nn.LayerNorm(dim) if config.layernorm_embedding else None
        self.layers = nn.ModuleList([DecoderLayer(config, i) for i in range(config.decoder_layers)])
        self.layer_norm = nn.LayerNorm(dim) if config.decoder_final_norm else None

    def forward(self, input_ids: Tensor, memory: Tensor, memory_mask: Tensor,
                attention_mask: Optional[Tensor] = None,
                cache: Optional[EncoderDecoderCache] = None) -> Tensor:
        """input_ids (N, L) after P cached tokens; memory (B, k, C), memory_mask (B, k) 1 = real,
        N = B x G (G consecutive rows per document); attention_mask (N, L) or (N, P+L), 1 = real
        (default: the pad tokens of input_ids)."""
        B, L = input_ids.shape                                              # B: the N rows here
        past = cache.get_seq_length() if cache is not None else 0
        padding = input_ids.eq(self.pad)
        if attention_mask is not None and attention_mask.dim() == 2:
            padding = padding | ~attention_mask[:, -L:].bool()
        x = self.embed_scale * self.embed_tokens(input_ids)
        x = x + self.embed_positions(fairseq_positions(padding, self.pad, past)).to(x.dtype)
        if self.layernorm_embedding is not None:
            x = self.layernorm_embedding(x)
        x = F.dropout(x, self.config.dropout, self.training)
        # causal over the P + L positions; a padded target position is no key (fairseq's
        # self_attn_padding_mask); the cached positions are never padding in generate()
        # (a padded query still has the real tokens before it: no row is empty)
        allowed = None
        if L > 1:
            q_pos = torch.arange(past, past + L, device=x.device)
            allowed = torch.arange(past + L, device=x.device)[None, :] <= q_pos[:, None]
            allowed = allowed[None, None]                                   # (1, 1, L, P+L)
        if bool(padding.any()):
            key_pad = torch.cat([padding.new_zeros(B, past), padding], dim=1)   # (B, P+L)
            not_pad = ~key_pad[:, None, None, :]
            allowed = not_pad if allowed is None else allowed & not_pad
        memory_allowed = None if bool(memory_mask.all()) else memory_mask.bool()[:, None, None, :]
        for layer in self.layers:
            x = layer(x, allowed, memory, memory_allowed, cache)
        if self.layer_norm is not None:
            x = self.layer_norm(x)
        return x


# ---------------------------------------------------------------------------------- generation
class FairseqForcedEOS(LogitsProcessor):
    """fairseq's end of sentence at the length limit: at the last step every token but </s> is
    forbidden, and </s> keeps its own log-probability. transformers' ForcedEOSTokenLogitsProcessor
    sets it to 0 instead, which changes the scores (and so the order) of the beams cut at the limit."""

    def __init__(self, max_length: int, eos_token_id: int):
        self.max_length, self.eos = max_length, eos_token_id

    def __call__(self, input_ids: Tensor, scores: Tensor) -> Tensor:
        if input_ids.size(1) == self.max_length - 1:
            keep = scores[:, self.eos].clone()
            scores = torch.full_like(scores, float("-inf"))
            scores[:, self.eos] = keep
        return scores


# ---------------------------------------------------------------------------------- the model
class PyramidionPreTrainedModel(PreTrainedModel):
    config_class = PyramidionHFConfig
    base_model_prefix = "model"
    main_input_name = "input_ids"
    supports_gradient_checkpointing = True
    _no_split_modules = ["EncoderLayer", "DecoderLayer"]
    _keys_to_ignore_on_load_unexpected = [r"encoder\.version", r"decoder\.version"]

    def _init_weights(self, module):
        # fairseq's initialisation: normal(0, 0.02) linears and embeddings (a fresh model only;
        # loading overwrites it)
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, std=0.02)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding) and not isinstance(module, LearnedPositions):
            nn.init.normal_(module.weight, std=module.embedding_dim ** -0.5)
            if module.padding_idx is not None:
                with torch.no_grad():
                    module.weight[module.padding_idx].zero_()
        elif isinstance(module, nn.LayerNorm):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)


class PyramidionModel(nn.Module):
    """Embeddings, encoder and decoder (no head); ``model.`` in the parameter names."""

    def __init__(self, config: PyramidionHFConfig):
        super().__init__()
        dim, pad = config.encoder_embed_dim, config.pad_token_id
        self.shared = nn.Embedding(config.vocab_size, dim, padding_idx=pad)
        encoder_embed = self.shared if config.share_all_embeddings else \
            nn.Embedding(config.vocab_size, dim, padding_idx=pad)
        self.encoder = PyramidionEncoder(config, encoder_embed)
        self.decoder = PyramidionDecoder(config, self.shared)


class PyramidionForConditionalGeneration(PyramidionPreTrainedModel, GenerationMixin):
    """A pyramidion summarizer: ``generate()``, ``pipeline("summarization")``, the Trainer."""

    def __init__(self, config: PyramidionHFConfig):
        super().__init__(config)
        self.model = PyramidionModel(config)
        self.lm_head = nn.Linear(config.encoder_embed_dim, config.vocab_size, bias=False)
        if config.final_logits_bias:
            self.register_buffer("final_logits_bias", torch.zeros(1, config.vocab_size))
        # read by save_pretrained (each shared tensor saved once) and by loading (tied again)
        self._tied_weights_keys = self.shared_parameters()
        self.post_init()
        self._tie_shared()

    @classmethod
    def from_bart(cls, src_dir: str, max_source_positions: int, schedule: Optional[str] = None,
                  **kwargs) -> "PyramidionForConditionalGeneration":
        """A pyramidion from a local Hugging Face BART folder (deep_pyramidion/hf/from_bart.py:
        pyramidion-convert's reading and initialisation, no fairseq). Needs the installed
        package: an exported folder does not carry the converter."""
        try:
            from deep_pyramidion.hf.from_bart import from_bart
        except ImportError as err:
            raise ImportError(f"from_bart needs the deep_pyramidion package ({err})") from None
        return from_bart(cls, src_dir, max_source_positions, schedule=schedule, **kwargs)

    # ------------------------------------------------------------------ weight sharing
    def shared_parameters(self) -> dict:
        """{target: source} of the parameters that are one tensor, as in the checkpoint: the
        decoder's input embedding is always ``model.shared``; the encoder's too with
        share_all_embeddings; the LM head with share_decoder_input_output_embed."""
        tied = {"model.decoder.embed_tokens.weight": "model.shared.weight"}
        if self.config.share_all_embeddings:
            tied["model.encoder.embed_tokens.weight"] = "model.shared.weight"
        if self.config.share_decoder_input_output_embed:
            tied["lm_head.weight"] = "model.shared.weight"
        return tied

    def get_expanded_tied_weights_keys(self, all_submodels: bool = False) -> dict:
        # transformers 5 asks the model which parameters are one tensor (for saving each once and
        # for tying again after loading); the answer is the config's, not tie_word_embeddings'
        return self.shared_parameters()

    def _tie_shared(self):
        model = self.model
        model.decoder.embed_tokens = model.shared
        if self.config.share_all_embeddings:
            model.encoder.embed_tokens = model.shared
        if self.config.share_decoder_input_output_embed:
            self.lm_head.weight = model.shared.weight

    def get_input_embeddings(self):
        return self.model.shared

    def set_input_embeddings(self, value):
        self.model.shared = value
        self._tie_shared()

    def get_output_embeddings(self):
        return self.lm_head

    def set_output_embeddings(self, value):
        self.lm_head = value

    def get_encoder(self, *args, **kwargs):
        return self.model.encoder

    def get_decoder(self, *args, **kwargs):
        return self.model.decoder

    def _set_gradient_checkpointing(self, enable: bool = True, *args, **kwargs):
        self.model.encoder.gradient_checkpointing = enable

    # ------------------------------------------------------------------ forward
    def forward(self, input_ids: Optional[Tensor] = None, attention_mask: Optional[Tensor] = None,
                decoder_input_ids: Optional[Tensor] = None,
                decoder_attention_mask: Optional[Tensor] = None, encoder_outputs=None,
                past_key_values: Optional[EncoderDecoderCache] = None,
                cache: Optional[EncoderDecoderCache] = None, labels: Optional[Tensor] = None,
                use_cache: Optional[bool] = None, output_hidden_states: Optional[bool] = None,
                return_dict: Optional[bool] = None, **kwargs) -> Seq2SeqLMOutput:
        cache = cache if cache is not None else past_key_values
        selection_term = None
        if encoder_outputs is None:
            if input_ids is None:
                raise ValueError("pass input_ids (or encoder_outputs)")
            # selection_loss=1, in training: the target says which input tokens the scorers
            # should rank high (as the fairseq model does)
            selection = self.selection_labels(input_ids, labels) \
                if self.training and labels is not None and self.config.selection_loss else None
            encoder_outputs = self.model.encoder(input_ids, attention_mask,
                                                 output_hidden_states=output_hidden_states,
                                                 selection_labels=selection)
            selection_term = encoder_outputs.selection_loss
        elif not isinstance(encoder_outputs, PyramidionEncoderOutput):
            encoder_outputs = self._as_encoder_output(encoder_outputs)
        memory = encoder_outputs.last_hidden_state                          # (B, k, C)
        memory_mask = encoder_outputs.encoder_attention_mask                # (B, k)
        if labels is not None:
            use_cache = False
            if decoder_input_ids is None:
                decoder_input_ids = self.prepare_decoder_input_ids_from_labels(labels)
        if decoder_input_ids is None:
            raise ValueError("pass decoder_input_ids or labels")
        if use_cache is None:
            use_cache = self.config.use_cache and not self.training
        if use_cache and cache is None:
            cache = EncoderDecoderCache(DynamicCache(), DynamicCache())
        hidden = self.model.decoder(decoder_input_ids, memory, memory_mask,
                                    attention_mask=decoder_attention_mask,
                                    cache=cache if use_cache else None)
        logits = self.lm_head(hidden)                                       # (B, L, vocab)
        if self.config.final_logits_bias:
            logits = logits + self.final_logits_bias.to(logits.dtype)
        loss = None
        if labels is not None:
            loss = F.cross_entropy(logits.view(-1, logits.size(-1)).float(),
                                   labels.reshape(-1), ignore_index=-100)
            if selection_term is not None:
                # both per-token means: the weight weighs one against the other, as fairseq's
                # criterion does (label_smoothed_cross_entropy_with_selection)
                loss = loss + float(self.config.selection_weight) * selection_term
        return Seq2SeqLMOutput(
            loss=loss, logits=logits, **{CACHE_FIELD: cache if use_cache else None},
            encoder_last_hidden_state=memory,
            encoder_hidden_states=encoder_outputs.hidden_states)

    @staticmethod
    def _as_encoder_output(value) -> PyramidionEncoderOutput:
        """An encoder output that lost its class (a tuple or a dict): the mask must be there."""
        if isinstance(value, dict) and value.get("encoder_attention_mask") is not None:
            return PyramidionEncoderOutput(**value)
        raise ValueError("encoder_outputs must be the output of model.get_encoder() (it holds the "
                         "padding of the pooled positions, encoder_attention_mask)")

    def selection_labels(self, input_ids: Tensor, labels: Tensor) -> Tensor:
        """(B, T) float: 1 where an input token's id occurs in the document's labels (-100 and
        the pad, </s>, <s> and <unk> ids ignored); source and target share one dictionary."""
        c = self.config
        ignore = {-100, c.pad_token_id, c.eos_token_id, c.bos_token_id,
                  getattr(c, "unk_token_id", None)}
        return selection_labels(input_ids, labels, {i for i in ignore if i is not None})

    def prepare_decoder_input_ids_from_labels(self, labels: Tensor) -> Tensor:
        """fairseq's teacher forcing: </s>, then the target shifted right (-100 read as padding)."""
        shifted = labels.new_full(labels.shape, self.config.pad_token_id)
        shifted[:, 1:] = labels[:, :-1]
        shifted[:, 0] = self.config.decoder_start_token_id
        return shifted.masked_fill(shifted.eq(-100), self.config.pad_token_id)

    # ------------------------------------------------------------------ generate()
    def _expand_inputs_for_generation(self, expand_size: int = 1, is_encoder_decoder: bool = False,
                                      input_ids: Optional[Tensor] = None, **model_kwargs):
        """generate() repeats its inputs once per beam (or returned sequence); the encoder output
        stays one per document: the decoder attends with each document's beams as queries of
        its one copy (Attention.attend_per_document), as fairseq's pyramidion decoder does."""
        if is_encoder_decoder and model_kwargs.get("encoder_outputs") is None:
            raise ValueError("If `is_encoder_decoder` is True, make sure that `encoder_outputs` "
                             "is defined.")
        # not an encoder-decoder to the base class: it expands the tensors of model_kwargs (the
        # input-length attention_mask, ...) but leaves encoder_outputs (no tensor) as it is
        return super()._expand_inputs_for_generation(expand_size=expand_size,
                                                     is_encoder_decoder=False,
                                                     input_ids=input_ids, **model_kwargs)

    def _reorder_cache(self, cache, beam_idx: Tensor):
        """Beam search moves rows only among the beams of one document, which share one copy of
        the cross-attention keys/values (DocumentCrossAttention): only the self-attention cache
        is reordered, not the k encoder positions of every layer at every step."""
        if isinstance(cache, EncoderDecoderCache):
            cache.self_attention_cache.reorder_cache(beam_idx)
        else:
            cache.reorder_cache(beam_idx)
        return cache

    def _get_logits_processor(self, *args, **kwargs):
        """transformers' processors, with fairseq's forced end of sentence (see FairseqForcedEOS)
        in place of ForcedEOSTokenLogitsProcessor."""
        processors = super()._get_logits_processor(*args, **kwargs)
        for i, p in enumerate(processors):
            if isinstance(p, ForcedEOSTokenLogitsProcessor):
                eos = p.eos_token_id
                eos = int(eos.flatten()[0]) if isinstance(eos, Tensor) else int(eos)
                processors[i] = FairseqForcedEOS(p.max_length, eos)
        return processors


__all__ = ["PyramidionForConditionalGeneration", "PyramidionPreTrainedModel",
           "PyramidionEncoderOutput", "FairseqForcedEOS"]
