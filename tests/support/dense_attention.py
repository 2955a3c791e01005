"""Dense references of the encoder attention patterns, built from each pattern's definition
(deep_pyramidion/modules/attention.py, memory.py): every row of the batch on the whole sequence
with an explicit (T, S) mask of allowed keys. Shape legend (batch-first): B batch, T length,
C channels, S keys (T, plus the compressed slots of blockwise-memory).

``layer`` is any object with the core's protocol call and a ``dense(x, padding_mask, blocked,
key_value, key_padding_mask) -> (y, usage)`` method (tests/support/layers.py has one in plain torch;
the integration tests wrap fairseq's layer the same way).
"""
import math

import torch


def padding(lengths, T, left):
    """(B, T) bool padding mask (True = padding) for documents of the given lengths."""
    pos = torch.arange(T)[None, :]
    lengths = torch.tensor(lengths)[:, None]
    return pos < T - lengths if left else pos >= lengths


def summary_cells(mask_row, l, s):
    """Positions of the last s real tokens of every block of l positions (one row)."""
    T = mask_row.numel()
    cells = []
    for start in range(0, T, l):
        real = [j for j in range(start, min(start + l, T)) if not mask_row[j]]
        cells += real[-s:]
    return set(cells)


def allowed_matrix(name, index, T, mask_row, config):
    """(T, T) bool: query i may attend to key j, by the pattern's definition."""
    i = torch.arange(T)[:, None]
    j = torch.arange(T)[None, :]
    if name == "full":
        return torch.ones(T, T, dtype=torch.bool)
    if name == "blockwise":
        c = min(config.chunk_size, T)
        return i // c == j // c
    if name == "blockwise-memory":
        c = min(config.chunk_size, T)
        return (j // c == i // c) | (j // c == i // c - 1)
    l = config.attention_stride or math.ceil(math.sqrt(T))
    if index % 2 == 0:
        return i // l == j // l
    if name == "strided":
        return i % l == j % l
    cells = summary_cells(mask_row, l, min(config.fixed_summary_cells, l))
    return torch.tensor([[jj in cells for jj in range(T)] for _ in range(T)])


def compressed_keys(pattern, index, layer, x_row, mask_row, config):
    """Every chunk of one row compressed on its own: slots (S', C), mask (S',), owner chunk (S',)."""
    compressor = pattern.compressors[str(index)]
    T, C = x_row.shape
    c = min(config.chunk_size, T)
    slots, masks, owners = [], [], []
    for q, start in enumerate(range(0, T, c)):
        chunk = torch.zeros(1, c, C)
        chunk_mask = torch.ones(1, c, dtype=torch.bool)
        stop = min(start + c, T)
        chunk[0, : stop - start] = x_row[start:stop]
        chunk_mask[0, : stop - start] = mask_row[start:stop]
        if chunk_mask.all():
            continue                                           # a dead chunk has nothing to give
        usage = layer(chunk, chunk_mask, need_usage=True)[1] if compressor.needs_usage else None
        pooled = compressor(chunk, chunk_mask, usage=usage)
        slots.append(pooled.x[0])
        masks.append(pooled.mask[0])
        owners += [q] * pooled.x.size(1)
    return torch.cat(slots), torch.cat(masks), torch.tensor(owners)


def dense_reference(name, index, layer, pattern, x, mask, config):
    """Output (B, T, C) and usage (B, T) of the pattern, computed densely row by row."""
    B, T, _ = x.shape
    outs, usages = [], []
    for b in range(B):
        x_b, mask_b = x[b:b + 1], mask[b:b + 1]
        allowed = allowed_matrix(name, index, T, mask[b], config)
        kv, kv_mask = x_b, mask_b
        if name == "blockwise-memory" and config.memory_compression != "none":
            c = min(config.chunk_size, T)
            N = math.ceil(T / c)
            cap = config.compressed_memory_chunks
            M = N - 2 if cap == 0 else min(cap, N - 2)
            slots, slot_mask, owner = compressed_keys(pattern, index, layer, x[b], mask[b], config)
            query_chunk = torch.arange(T)[:, None] // c
            reads = (owner[None, :] <= query_chunk - 2) & (owner[None, :] >= query_chunk - 1 - M)
            allowed = torch.cat([allowed, reads], dim=1)
            kv = torch.cat([x_b, slots.unsqueeze(0)], dim=1)
            kv_mask = torch.cat([mask_b, slot_mask.unsqueeze(0)], dim=1)
        y, usage = layer.dense(x_b, mask_b, ~allowed, kv, kv_mask)
        outs.append(y)
        usages.append(usage[:, :T])                            # usage of tokens, not of slots
    return torch.cat(outs), torch.cat(usages)
