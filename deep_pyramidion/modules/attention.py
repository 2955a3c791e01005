"""Encoder self-attention patterns (``--encoder-attention``), computed by reshaping into blocks.

Shape legend (fairseq's time-first layout):
    T   length at this layer (it shrinks after pooling)      B   batch      C   channels
    c   chunk size, min(--chunk-size, T)                      N   blocks per row, ceil(T / block)
    L   live blocks (holding at least one real query)
    l   block length of strided / fixed: --attention-stride, or ceil(sqrt(T)) when it is 0
        (the Sparse Transformer's l ~ sqrt(n), recomputed per layer as pooling shrinks T)
    s   summary cells per block (fixed): min(--fixed-summary-cells, l)
    m   compressed slots per chunk: ceil(c / --memory-compression-rate)
    M   earlier chunks held in the compressed memory
    S   keys per query block

A(i) is the set of keys query i attends to. Every pattern is computed by folding blocks into the
batch axis and running the layer's own attention on them; no pattern builds or masks a dense
T x T score matrix (tests/test_attention.py compares each with such a dense reference).

    full              A(i) = every position                                         O(T^2)
    blockwise         A(i) = {j : j // c == i // c}                                  O(T c)
    strided           Sparse Transformer, strided, bidirectional; interleaved layers:
                        even layers  A(i) = {j : j // l == i // l}   (row of the (N, l) grid)
                        odd layers   A(i) = {j : j %  l == i %  l}   (column of the grid)
                      two layers connect every pair of positions                     O(T sqrt T)
    fixed             Sparse Transformer, fixed, bidirectional; interleaved layers:
                        even layers  A(i) = {j : j // l == i // l}
                        odd layers   A(i) = summary cells of every block: its last s real
                                     tokens (j % l >= l - s for a full block)       O(T sqrt T s)
    blockwise-memory  Transformer-XL's segment recurrence: A(i) = own chunk + previous chunk,
                      the previous chunk's states cached without gradient;           O(T c)
                      + with --memory-compression NAME (Compressive Transformer): the chunks
                      before that, each compressed to m slots by the NAME pooler      + O(T M m)
                      (M = all earlier chunks by default, which makes that term O(T^2 / R);
                      --compressed-memory-chunks M caps it, like the Compressive Transformer's
                      fixed-size compressed memory, and keeps the pattern O(T c))

Interleaved layers, not head groups: the paper offers both ("one attention type per residual block,
interleaved" or heads of each type side by side). fairseq's MultiheadAttention projects all heads
against one key set, so head groups with different keys would need a second attention
implementation; interleaving runs each layer's own attention unchanged on a reshaped input. An
encoder needs >= 2 layers for the factorization to connect all positions.

The fixed pattern's summary cells are defined on real tokens (the last s real tokens of a block),
so a short or partly padded block still contributes summaries and every document has at least one
(its last real token): no query attends to nothing.
"""
import logging
import math
from typing import NamedTuple, Optional, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

from deep_pyramidion.modules.blockwise import (
    Chunks, all_chunks, merge_chunks, run_blockwise, run_blockwise_multi,
)
from deep_pyramidion.modules.pooling import POOLERS, build_pooler, keep_in_graph

logger = logging.getLogger(__name__)

NO_COMPRESSION = "none"


class LayerOutput(NamedTuple):
    x: Tensor                                    # (T, B, C)
    received: Optional[Tensor] = None            # (T, B) attention each token received (usage)
    reconstruction_loss: Optional[Tensor] = None  # () attention-reconstruction loss of the memory


def _call(layer, x, mask, need_received, **kv) -> Tuple[Tensor, Optional[Tensor]]:
    if need_received:
        return layer(x, encoder_padding_mask=mask, need_received=True, **kv)
    return layer(x, encoder_padding_mask=mask, **kv), None


def _blockwise(layer, x, mask, size, need_received) -> Tuple[Tensor, Optional[Tensor]]:
    if not need_received:
        return run_blockwise(lambda xc, mc: layer(xc, encoder_padding_mask=mc), x, mask, size), None
    return run_blockwise_multi(
        lambda xc, mc: layer(xc, encoder_padding_mask=mc, need_received=True), x, mask, size)


def _pad_to_blocks(x: Tensor, mask: Optional[Tensor], block: int):
    """(T, B, C), (B, T) -> (N*l, B, C), (B, N*l) or None when nothing is padding; and N."""
    T, B, _ = x.shape
    N = -(-T // block)
    pad = N * block - T
    if pad:
        if mask is None:
            mask = torch.zeros(B, T, dtype=torch.bool, device=x.device)
        x = F.pad(x, (0, 0, 0, 0, 0, pad))                       # (N*l, B, C)
        mask = F.pad(mask, (0, pad), value=True)                 # (B, N*l)
    return x, mask, N


class AttentionPattern(nn.Module):
    """``run(layer, index, x (T, B, C), padding_mask (B, T) | None, need_received) -> LayerOutput``"""

    def __init__(self, args, embed_dim: int):
        super().__init__()

    def run(self, layer, index: int, x: Tensor, padding_mask: Optional[Tensor],
            need_received: bool = False) -> LayerOutput:
        raise NotImplementedError


class FullAttention(AttentionPattern):
    def run(self, layer, index, x, padding_mask, need_received=False):
        return LayerOutput(*_call(layer, x, padding_mask, need_received))


class BlockwiseAttention(AttentionPattern):
    def __init__(self, args, embed_dim):
        super().__init__(args, embed_dim)
        self.chunk_size = args.chunk_size

    def run(self, layer, index, x, padding_mask, need_received=False):
        return LayerOutput(*_blockwise(layer, x, padding_mask, self.chunk_size, need_received))


class _Factorized(AttentionPattern):
    """Shared by strided and fixed: block length, and the local (row) half on even layers."""

    def __init__(self, args, embed_dim):
        super().__init__(args, embed_dim)
        self.stride = args.attention_stride

    def block_length(self, T: int) -> int:
        if self.stride > 0:
            return self.stride
        return math.isqrt(T - 1) + 1 if T > 1 else 1             # ceil(sqrt(T))

    def run(self, layer, index, x, padding_mask, need_received=False):
        l = self.block_length(x.size(0))
        if index % 2 == 0:
            return LayerOutput(*_blockwise(layer, x, padding_mask, l, need_received))
        return self.run_odd(layer, x, padding_mask, l, need_received)

    def run_odd(self, layer, x, padding_mask, l, need_received) -> LayerOutput:
        raise NotImplementedError


class StridedAttention(_Factorized):
    def run_odd(self, layer, x, padding_mask, l, need_received):
        T, B, C = x.shape
        xp, mp, N = _pad_to_blocks(x, padding_mask, l)
        # columns become contiguous: position i*l + j of the (N, l) grid moves to j*N + i, so
        # column j is chunk j of length N: blockwise attention over chunks of N is column attention
        xg = xp.view(N, l, B, C).transpose(0, 1).reshape(l * N, B, C)      # (l*N, B, C)
        mg = None if mp is None else mp.view(B, N, l).transpose(1, 2).reshape(B, l * N)  # (B, l*N)
        y, received = _blockwise(layer, xg, mg, N, need_received)
        y = y.view(l, N, B, C).transpose(0, 1).reshape(N * l, B, C)[:T]    # back to (T, B, C)
        if received is not None:
            received = received.view(l, N, B).transpose(0, 1).reshape(N * l, B)[:T]  # (T, B)
        return LayerOutput(y, received)


class FixedAttention(_Factorized):
    def __init__(self, args, embed_dim):
        super().__init__(args, embed_dim)
        self.summary_cells = args.fixed_summary_cells

    def summary_positions(self, mask: Tensor, l: int, N: int) -> Tuple[Tensor, Tensor]:
        """(B, N*l) padding mask -> positions (B, N*s) of the summary cells and their validity."""
        B = mask.size(0)
        s = min(self.summary_cells, l)
        real = ~mask.view(B, N, l)                                          # (B, N, l)
        offset = torch.arange(l, device=mask.device).expand(B, N, l)
        # the last s real tokens of a block rank highest; padding ranks below every real token
        ranked = torch.where(real, offset, torch.full_like(offset, -1))
        top = ranked.topk(s, dim=-1).indices.sort(dim=-1).values            # (B, N, s)
        valid = real.gather(-1, top)                                        # (B, N, s)
        start = torch.arange(N, device=mask.device).view(1, N, 1) * l
        return (top + start).reshape(B, N * s), valid.reshape(B, N * s)     # (B, S), S = N*s

    def run_odd(self, layer, x, padding_mask, l, need_received):
        T, B, C = x.shape
        xp, mp, N = _pad_to_blocks(x, padding_mask, l)
        if mp is None:
            mp = torch.zeros(B, N * l, dtype=torch.bool, device=x.device)
        positions, valid = self.summary_positions(mp, l, N)                 # (B, S), (B, S)
        # a row made only of padding has no summary cell: give it one, so that its (ignored)
        # queries see a key and stay finite instead of NaN
        valid[:, 0] |= ~valid.any(dim=1)
        S = positions.size(1)
        keys = xp.transpose(0, 1).gather(1, positions.unsqueeze(-1).expand(B, S, C))  # (B, S, C)
        y, received = _call(layer, x, padding_mask, need_received,
                            key_value=keys.transpose(0, 1), key_padding_mask=~valid)
        if received is not None:
            # usage lands on the summary cells only: scatter it back to their positions
            received = received.new_zeros(B, N * l).scatter_add(1, positions, received.t())
            received = received.t()[:T]                                     # (T, B)
        return LayerOutput(y, received)


def _shift_chunks(t: Tensor, B: int, N: int, d: int) -> Tensor:
    """(S, B*N, C): chunk b*N + n gets chunk b*N + n - d of the same row; the first d get zeros."""
    S, _, C = t.shape
    v = t.view(S, B, N, C)
    return torch.cat([v.new_zeros(S, B, min(d, N), C), v[:, :, : max(N - d, 0)]], dim=2) \
        .reshape(S, B * N, C)


def _shift_mask(m: Tensor, B: int, N: int, d: int) -> Tensor:
    """(B*N, S) padding mask shifted like :func:`_shift_chunks`; missing chunks are all padding."""
    S = m.size(1)
    v = m.view(B, N, S)
    return torch.cat([v.new_ones(B, min(d, N), S), v[:, : max(N - d, 0)]], dim=1).reshape(B * N, S)


def _frozen_attention(layer, query: Tensor, kv: Tensor, kv_mask: Tensor) -> Tensor:
    """The layer's attention output with every parameter detached and no dropout.

    The attention-reconstruction loss must train only the compression network (the Compressive
    Transformer stops its gradient into the attention), so the layer's weights enter as constants.
    """
    attn = layer.self_attn
    if layer.normalize_before:
        norm = layer.self_attn_layer_norm
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


class BlockwiseMemoryAttention(AttentionPattern):
    """Chunks that also read the previous chunk (no gradient) and optionally compressed older ones.

    Keys of chunk n, oldest first: [compressed chunks n-1-M .. n-2 (m slots each), chunk n-1,
    chunk n]. All chunks of a layer are computed at once: chunk n-1's cached states are simply the
    layer's input at chunk n-1, detached, as Transformer-XL caches the previous segment's hidden
    states. Absolute positions come from the embeddings, so the memory needs no relative encoding.

    The compressed memory (Compressive Transformer) holds each earlier chunk pooled to m slots by
    the ``--memory-compression`` pooler (one per layer), from detached states. A trainable
    compressor learns from the task loss through the attention that reads its output, and, with
    ``--criterion label_smoothed_cross_entropy_with_reconstruction``, from the attention-
    reconstruction loss: for every chunk j with a reader n = j + 2, the mean squared difference
    between the layer's attention (frozen weights) of chunk n's queries over chunk j and over its
    compression. The loss is computed in training whenever the compressor has parameters.
    """

    def __init__(self, args, embed_dim):
        super().__init__(args, embed_dim)
        self.chunk_size = args.chunk_size
        self.max_chunks = args.compressed_memory_chunks
        name = args.memory_compression
        self.compressors = nn.ModuleDict()
        if name != NO_COMPRESSION:
            slots = -(-args.chunk_size // args.memory_compression_rate)
            # one compression network per layer, as in the Compressive Transformer
            self.compressors.update({str(i): build_pooler(name, embed_dim, slots, args)
                                     for i in range(args.encoder_layers)})

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

    def run(self, layer, index, x, padding_mask, need_received=False):
        T, B, C = x.shape
        compressor = self._compressor(index)
        if T <= self.chunk_size:
            # one chunk: there is no earlier chunk to remember
            y, received = _blockwise(layer, x, padding_mask, self.chunk_size, need_received)
            y, loss = self._unused(y, compressor)
            return LayerOutput(y, received, loss)

        xs, ms, N = all_chunks(x, padding_mask, self.chunk_size)   # (c, B*N, C), (B*N, c)
        c = xs.size(0)
        live = (~ms).any(dim=1).nonzero().squeeze(1)                # (L,)
        cached = xs.detach()                                        # no gradient into the past
        keys = [_shift_chunks(cached, B, N, 1), xs]                 # previous chunk, own chunk
        key_masks = [_shift_mask(ms, B, N, 1), ms]
        loss = None
        M = N - 2 if self.max_chunks == 0 else min(self.max_chunks, N - 2)
        if compressor is not None and M > 0:
            comp, comp_mask = self._compress(compressor, layer, cached, ms, live, B, N)
            for d in range(2, M + 2):                               # older chunks go in front
                keys.insert(0, _shift_chunks(comp, B, N, d))        # (m, B*N, C)
                key_masks.insert(0, _shift_mask(comp_mask, B, N, d))
            if self.training and self._trainable(compressor):
                loss = self._reconstruction_loss(layer, cached, ms, comp, comp_mask, B, N)
        kv = torch.cat(keys, dim=0).index_select(1, live)           # (S, L, C)
        kv_mask = torch.cat(key_masks, dim=1).index_select(0, live)  # (L, S)
        q = xs.index_select(1, live)                                # (c, L, C)
        q_mask = ms.index_select(0, live)                           # (L, c)
        y, received = _call(layer, q, q_mask if q_mask.any() else None, need_received,
                            key_value=kv, key_padding_mask=kv_mask)
        chunks = Chunks(q, q_mask, live, T, B, N)
        y = merge_chunks(y, chunks)                                 # (T, B, C)
        if received is not None:
            received = self._received(received, c, live, chunks)
        if loss is None:
            y, loss = self._unused(y, compressor)
        return LayerOutput(y, received, loss)

    @staticmethod
    def _received(received: Tensor, c: int, live: Tensor, chunks: Chunks) -> Tensor:
        """(S, L) usage of the keys -> (T, B) usage of the tokens: a token is used by its own chunk
        and, as memory, by the next one (compressed slots are not tokens and are left out)."""
        B, N = chunks.batch, chunks.num_chunks
        grid = received.new_zeros(2, c, B * N).index_copy(2, live, received[-2 * c:].view(2, c, -1))
        as_memory = grid[0].view(c, B, N)                            # got by chunk n-1's tokens
        usage = grid[1].view(c, B, N).clone()
        usage[:, :, :-1] += as_memory[:, :, 1:]                      # credit them to chunk n-1
        whole = Chunks(None, None, None, chunks.length, B, N)
        return merge_chunks(usage.view(c, B * N, 1), whole).squeeze(-1)  # (T, B)

    @staticmethod
    def _compress(compressor, layer, cached, ms, live, B, N) -> Tuple[Tensor, Tensor]:
        """Every live chunk pooled to m slots: (c, B*N, C) -> (m, B*N, C), (B*N, m)."""
        c, _, C = cached.shape
        xl = cached.index_select(1, live)                            # (c, L, C)
        ml = ms.index_select(0, live)                                # (L, c)
        if getattr(compressor, "needs_attention", False):
            # most-used: usage of each token within its own chunk, from a pass without gradient
            with torch.no_grad():
                _, usage = layer(xl, encoder_padding_mask=ml if ml.any() else None,
                                 need_received=True)                 # (c, L)
            y, y_mask = compressor(xl.transpose(0, 1), ml, usage.t())
        else:
            y, y_mask = compressor(xl.transpose(0, 1), ml)           # (L, m, C), (L, m)
        m = y.size(1)
        comp = y.new_zeros(B * N, m, C).index_copy(0, live, y)       # (B*N, m, C)
        comp_mask = y_mask.new_ones(B * N, m).index_copy(0, live, y_mask)
        return comp.transpose(0, 1), comp_mask                       # (m, B*N, C), (B*N, m)

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
        q, q_mask = cached[:, reader], ms[reader]                    # (c, P, C), (P, c)
        with torch.no_grad():
            target = _frozen_attention(layer, q, cached[:, source], ms[source])   # (c, P, C)
        pred = _frozen_attention(layer, q, comp[:, source], comp_mask[source])    # (c, P, C)
        err = (pred.float() - target.float()).pow(2).mean(dim=-1)    # (c, P)
        real = (~q_mask).t().float()                                 # (c, P)
        return (err * real).sum() / real.sum().clamp(min=1.0)


ATTENTION_PATTERNS = {
    "blockwise": BlockwiseAttention,
    "full": FullAttention,
    "strided": StridedAttention,
    "fixed": FixedAttention,
    "blockwise-memory": BlockwiseMemoryAttention,
}


def build_attention_pattern(args, embed_dim: int) -> AttentionPattern:
    return ATTENTION_PATTERNS[args.encoder_attention](args, embed_dim)


def _positive_int(value, flag: str, minimum: int):
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise ValueError(f"{flag} must be an integer >= {minimum}, got {value!r}")


def check_attention_options(args) -> None:
    """Reject bad values of the pattern flags before any training step (messages name the flag)."""
    if args.encoder_attention not in ATTENTION_PATTERNS:
        raise ValueError(f"--encoder-attention: unknown value {args.encoder_attention!r}; "
                         f"choose from {list(ATTENTION_PATTERNS)}")
    _positive_int(args.attention_stride, "--attention-stride", 0)
    _positive_int(args.fixed_summary_cells, "--fixed-summary-cells", 1)
    _positive_int(args.memory_compression_rate, "--memory-compression-rate", 1)
    _positive_int(args.compressed_memory_chunks, "--compressed-memory-chunks", 0)
    _positive_int(args.compression_taps, "--compression-taps", 1)
    if args.encoder_attention == "fixed" and args.attention_stride > 0 \
            and args.fixed_summary_cells > args.attention_stride:
        raise ValueError(
            f"--fixed-summary-cells {args.fixed_summary_cells} exceeds --attention-stride "
            f"{args.attention_stride}: a block cannot hold more summary cells than tokens")
    name = args.memory_compression
    if name != NO_COMPRESSION:
        if name not in POOLERS:
            raise ValueError(f"--memory-compression: unknown value {name!r}; choose from "
                             f"{sorted(set(POOLERS) | {NO_COMPRESSION})}")
        if args.encoder_attention != "blockwise-memory":
            raise ValueError(f"--memory-compression {name} needs --encoder-attention "
                             f"blockwise-memory (got {args.encoder_attention})")
    if args.encoder_attention in ("strided", "fixed") and args.encoder_layers < 2:
        logger.warning("--encoder-attention %s alternates two patterns over layers; with "
                       "--encoder-layers %d only the local one runs", args.encoder_attention,
                       args.encoder_layers)
