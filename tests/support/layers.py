"""A plain-torch transformer encoder layer behind the core's layer protocol (modules/layer.py).

Shape legend (batch-first): B batch, T queries, S keys, C channels, H heads.

The core's attention patterns are tested with this layer, not fairseq's: it shows that the core
needs nothing from fairseq, and its :meth:`dense` call (an explicit (T, S) mask of allowed keys)
is what the dense references of tests/support/dense_attention.py are built from. Every call
records its (queries, keys) sizes in ``calls``, so tests can check that no pattern hands it a
dense T x T problem.
"""
import math
from typing import List, Optional, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor


class TorchEncoderLayer(nn.Module):
    def __init__(self, dim: int = 16, heads: int = 4, ffn: int = 32, normalize_before: bool = False,
                 seed: int = 0):
        super().__init__()
        torch.manual_seed(seed)
        self.heads = heads
        self.normalize_before = normalize_before
        self.q, self.k, self.v, self.o = (nn.Linear(dim, dim) for _ in range(4))
        self.attn_norm, self.ffn_norm = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.fc1, self.fc2 = nn.Linear(dim, ffn), nn.Linear(ffn, dim)
        self.calls: List[Tuple[int, int]] = []

    def _attend(self, query: Tensor, kv: Tensor, blocked: Tensor, frozen: bool = False):
        """query (B, T, C), kv (B, S, C), blocked (B, T, S) True = may not attend ->
        (out (B, T, C), weights (B, H, T, S))."""
        self.calls.append((query.size(1), kv.size(1)))
        lin = (lambda m, t: F.linear(t, m.weight.detach(), m.bias.detach())) if frozen else \
            (lambda m, t: m(t))
        B, T, C = query.shape
        S, H = kv.size(1), self.heads
        q = lin(self.q, query).view(B, T, H, -1).transpose(1, 2)        # (B, H, T, d)
        k = lin(self.k, kv).view(B, S, H, -1).transpose(1, 2)           # (B, H, S, d)
        v = lin(self.v, kv).view(B, S, H, -1).transpose(1, 2)
        logits = q @ k.transpose(-1, -2) / math.sqrt(q.size(-1))        # (B, H, T, S)
        # finite fill: a query with no allowed key (padding) stays finite
        weights = logits.masked_fill(blocked.unsqueeze(1), -1e9).softmax(dim=-1)
        out = (weights @ v).transpose(1, 2).reshape(B, T, C)
        return lin(self.o, out), weights

    def _norm(self, module, t, frozen=False):
        if not frozen:
            return module(t)
        return F.layer_norm(t, module.normalized_shape, module.weight.detach(),
                            module.bias.detach(), module.eps)

    def dense(self, x: Tensor, padding_mask: Tensor, blocked: Optional[Tensor] = None,
              key_value: Optional[Tensor] = None, key_padding_mask: Optional[Tensor] = None):
        """The layer with an explicit mask: ``blocked`` (T, S) True = query i may not see key j,
        on top of ``key_padding_mask``. Returns y (B, T, C) and usage (B, S)."""
        residual = x
        h = self._norm(self.attn_norm, x) if self.normalize_before else x
        if key_value is None:
            kv, kv_mask = h, padding_mask
        else:
            kv = self._norm(self.attn_norm, key_value) if self.normalize_before else key_value
            kv_mask = key_padding_mask
        B, T, _ = x.shape
        mask = kv_mask.unsqueeze(1).expand(B, T, kv.size(1))
        if blocked is not None:
            mask = mask | blocked.unsqueeze(0)
        out, weights = self._attend(h, kv, mask)
        usage = weights.detach().sum(dim=1).masked_fill(padding_mask.unsqueeze(-1), 0.0).sum(dim=1)
        x = residual + out
        if not self.normalize_before:
            x = self.attn_norm(x)
        residual = x
        h = self.ffn_norm(x) if self.normalize_before else x
        x = residual + self.fc2(F.relu(self.fc1(h)))
        if not self.normalize_before:
            x = self.ffn_norm(x)
        return x, usage

    def forward(self, x, padding_mask, key_value=None, key_padding_mask=None, need_usage=False):
        y, usage = self.dense(x, padding_mask, None, key_value, key_padding_mask)
        return y, (usage if need_usage else None)

    def frozen_attention(self, query, key_value, key_padding_mask):
        if self.normalize_before:
            query = self._norm(self.attn_norm, query, frozen=True)
            key_value = self._norm(self.attn_norm, key_value, frozen=True)
        B, T, _ = query.shape
        blocked = key_padding_mask.unsqueeze(1).expand(B, T, key_value.size(1))
        return self._attend(query, key_value, blocked, frozen=True)[0]
