"""``--encoder-attention blockwise-memory``: chunks that also read the chunks before them.

Shape legend (batch-first):
    B   batch       T   length at this layer       C   channels
    c   chunk size, min(--chunk-size, T)           N   chunks per row, ceil(T / c)
    L   live chunks (holding at least one real token)
    m   compressed slots per chunk: ceil(c / --memory-compression-rate)
    M   earlier chunks held in the compressed memory (all, or --compressed-memory-chunks)
    S   keys per chunk: M*m + 2c

Transformer-XL's segment recurrence: chunk n attends to itself and to chunk n-1, whose states are
cached without gradient, A(i) = own chunk + previous chunk, O(T c). All chunks of a layer are
computed at once: chunk n-1's cached states are simply the layer's input at chunk n-1, detached,
as Transformer-XL caches the previous segment's hidden states. Absolute positions come from the
embeddings, so the memory needs no relative encoding.

With ``--memory-compression NAME`` (the Compressive Transformer): the chunks before that enter
too, each pooled to m slots by the NAME pooler (one per layer, on detached states), + O(T M m);
with all earlier chunks (the default) that term is O(T^2 / R), and --compressed-memory-chunks M
caps it like the Compressive Transformer's fixed-size compressed memory.

Keys of chunk n, oldest first: [compressed chunks n-1-M .. n-2 (m slots each), chunk n-1,
chunk n]. A trainable compressor learns from the task loss through the attention that reads its
output and from the attention-reconstruction loss: for every chunk j with a reader n = j + 2, the
mean squared difference between the layer's attention (frozen weights) of chunk n's queries over
chunk j and over its compression. The loss is computed in training whenever the compressor has
parameters (``--criterion label_smoothed_cross_entropy_with_reconstruction`` adds it).
"""
from typing import Optional, Tuple

import torch
import torch.nn as nn
from torch import Tensor

from deep_pyramidion.config import NO_COMPRESSION
from deep_pyramidion.modules.attention import AttentionPattern, blockwise, register_attention
from deep_pyramidion.modules.chunking import Chunks, all_chunks, merge_chunks
from deep_pyramidion.modules.layer import LayerOutput
from deep_pyramidion.modules.poolers import build_pooler, keep_in_graph


def shift_chunks(t: Tensor, B: int, N: int, d: int) -> Tensor:
    """(B*N, S, C): chunk b*N + n gets chunk b*N + n - d of the same row; the first d get zeros."""
    _, S, C = t.shape
    v = t.view(B, N, S, C)
    return torch.cat([v.new_zeros(B, min(d, N), S, C), v[:, : max(N - d, 0)]], dim=1) \
        .reshape(B * N, S, C)


def shift_mask(m: Tensor, B: int, N: int, d: int) -> Tensor:
    """(B*N, S) padding mask shifted like :func:`shift_chunks`; missing chunks are all padding."""
    S = m.size(1)
    v = m.view(B, N, S)
    return torch.cat([v.new_ones(B, min(d, N), S), v[:, : max(N - d, 0)]], dim=1).reshape(B * N, S)


@register_attention("blockwise-memory")
class BlockwiseMemoryAttention(AttentionPattern):
    """Blockwise attention over own chunk + previous chunk (+ compressed older chunks)."""

    def __init__(self, chunk_size: int, compressed_chunks: int = 0,
                 compressors: Optional[nn.ModuleDict] = None):
        super().__init__()
        self.chunk_size = chunk_size
        self.max_chunks = compressed_chunks
        # layer index (str) -> compressor; empty without --memory-compression
        self.compressors = compressors if compressors is not None else nn.ModuleDict()

    @classmethod
    def from_config(cls, config, embed_dim):
        compressors = nn.ModuleDict()
        if config.memory_compression != NO_COMPRESSION:
            slots = -(-config.chunk_size // config.memory_compression_rate)
            # one compression network per layer, as in the Compressive Transformer
            compressors.update({str(i): build_pooler(config.memory_compression, embed_dim, slots,
                                                     config)
                                for i in range(config.encoder_layers)})
        return cls(config.chunk_size, config.compressed_memory_chunks, compressors)

    def _compressor(self, index: int):
        return self.compressors[str(index)] if str(index) in self.compressors else None

    @staticmethod
    def _trainable(compressor) -> bool:
        return compressor is not None and any(p.requires_grad for p in compressor.parameters())

    def _unused(self, y: Tensor, compressor) -> Tuple[Tensor, Optional[Tensor]]:
        """Batch too short for a compressed memory: keep the compressor in the graph (DDP) and
        report a zero reconstruction loss, so the criterion sees one on every training batch."""
        if not (self.training and self._trainable(compressor)):
            return y, None
        dependency = torch.stack([p.sum() for p in compressor.parameters()])
        return keep_in_graph(y, dependency), dependency.sum().float() * 0.0

    def forward(self, layer, index, x, mask, need_usage=False):
        B, T, C = x.shape
        compressor = self._compressor(index)
        if T <= self.chunk_size:
            # one chunk: there is no earlier chunk to remember
            y, usage = blockwise(layer, x, mask, self.chunk_size, need_usage)
            y, loss = self._unused(y, compressor)
            return LayerOutput(y, usage, loss)

        xs, ms, N = all_chunks(x, mask, self.chunk_size)            # (B*N, c, C), (B*N, c)
        c = xs.size(1)
        live = (~ms).any(dim=1).nonzero().squeeze(1)                # (L,)
        cached = xs.detach()                                        # no gradient into the past
        keys = [shift_chunks(cached, B, N, 1), xs]                  # previous chunk, own chunk
        key_masks = [shift_mask(ms, B, N, 1), ms]
        loss = None
        M = N - 2 if self.max_chunks == 0 else min(self.max_chunks, N - 2)
        if compressor is not None and M > 0:
            comp, comp_mask = self._compress(compressor, layer, cached, ms, live, B, N)
            for d in range(2, M + 2):                               # older chunks go in front
                keys.insert(0, shift_chunks(comp, B, N, d))         # (B*N, m, C)
                key_masks.insert(0, shift_mask(comp_mask, B, N, d))
            if self.training and self._trainable(compressor):
                loss = self._reconstruction_loss(layer, cached, ms, comp, comp_mask, B, N)
        kv = torch.cat(keys, dim=1).index_select(0, live)           # (L, S, C)
        kv_mask = torch.cat(key_masks, dim=1).index_select(0, live)  # (L, S)
        q = xs.index_select(0, live)                                # (L, c, C)
        q_mask = ms.index_select(0, live)                           # (L, c)
        y, usage = layer(q, q_mask, key_value=kv, key_padding_mask=kv_mask, need_usage=need_usage)
        chunks = Chunks(q, q_mask, live, T, B, N)
        y = merge_chunks(y, chunks)                                 # (B, T, C)
        if usage is not None:
            usage = self._usage(usage, c, live, chunks)
        if loss is None:
            y, loss = self._unused(y, compressor)
        return LayerOutput(y, usage, loss)

    @staticmethod
    def _usage(usage: Tensor, c: int, live: Tensor, chunks: Chunks) -> Tensor:
        """(L, S) usage of the keys -> (B, T) usage of the tokens: a token is used by its own chunk
        and, as memory, by the next one (compressed slots are not tokens and are left out)."""
        B, N = chunks.batch, chunks.num_chunks
        L = usage.size(0)
        grid = usage.new_zeros(B * N, 2, c).index_copy(0, live, usage[:, -2 * c:].view(L, 2, c))
        as_memory = grid[:, 0].view(B, N, c)                         # got from chunk n+1's queries
        own = grid[:, 1].view(B, N, c).clone()
        own[:, :-1] += as_memory[:, 1:]                              # credit them to chunk n
        return own.reshape(B, N * c)[:, : chunks.length]             # (B, T)

    @staticmethod
    def _compress(compressor, layer, cached, ms, live, B, N) -> Tuple[Tensor, Tensor]:
        """Every live chunk pooled to m slots: (B*N, c, C) -> (B*N, m, C), (B*N, m)."""
        C = cached.size(2)
        xl = cached.index_select(0, live)                            # (L, c, C)
        ml = ms.index_select(0, live)                                # (L, c)
        usage = None
        if compressor.needs_usage:
            # most-used: usage of each token within its own chunk, from a pass without gradient
            with torch.no_grad():
                _, usage = layer(xl, ml, need_usage=True)            # (L, c)
        pooled = compressor(xl, ml, usage=usage)                     # (L, m, C), (L, m)
        m = pooled.x.size(1)
        comp = pooled.x.new_zeros(B * N, m, C).index_copy(0, live, pooled.x)
        comp_mask = pooled.mask.new_ones(B * N, m).index_copy(0, live, pooled.mask)
        return comp, comp_mask

    @staticmethod
    def _reconstruction_loss(layer, cached, ms, comp, comp_mask, B, N) -> Tensor:
        live = (~ms).any(dim=1).view(B, N)
        # pairs (reader n, compressed chunk j = n - 2), both holding real tokens
        valid = live[:, 2:] & live[:, :-2]                           # (B, N-2)
        rows = torch.arange(B, device=ms.device).unsqueeze(1) * N
        reader = (rows + torch.arange(2, N, device=ms.device))[valid]  # (P,)
        if reader.numel() == 0:
            return comp.sum().float() * 0.0
        source = reader - 2
        q, q_mask = cached[reader], ms[reader]                       # (P, c, C), (P, c)
        with torch.no_grad():
            target = layer.frozen_attention(q, cached[source], ms[source])    # (P, c, C)
        pred = layer.frozen_attention(q, comp[source], comp_mask[source])     # (P, c, C)
        err = (pred.float() - target.float()).pow(2).mean(dim=-1)    # (P, c)
        real = (~q_mask).float()                                     # (P, c)
        return (err * real).sum() / real.sum().clamp(min=1.0)
