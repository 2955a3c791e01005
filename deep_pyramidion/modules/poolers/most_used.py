"""``most-used``: keep the tokens that received the most attention (Compressive Transformer,
seeds/004). Shape legend: B batch, n input length, D channels, k = min(width, n) kept.

No trainable scorer: the encoder runs the layer before this pooler with ``need_usage`` (the
attention each token received as a key, summed over heads and queries, computed by the same
pattern as the layer itself) and passes it as ``usage``. Gradients reach the kept tokens.
"""
from deep_pyramidion.modules.poolers.registry import Pooled, Pooler, register_pooler, selection_assignment


@register_pooler("most-used")
class MostUsedPooler(Pooler):
    """Keep the k most-attended tokens, in document order."""

    needs_usage = True

    def forward(self, x, mask, usage=None, with_assignment=False):
        B, n, D = x.shape
        k = min(self.width, n)
        if k >= n:
            return self.pass_through(x, mask, with_assignment)
        if usage is None or usage.shape != (B, n):
            raise ValueError("most-used pooling needs the attention each token received, (B, n); "
                             f"got {None if usage is None else tuple(usage.shape)}")
        ranked = usage.float().masked_fill(mask, float("-inf"))           # padding ranks last
        idx = ranked.topk(k, dim=1).indices.sort(dim=1).values             # (B, k) document order
        y = x.gather(1, idx.unsqueeze(-1).expand(B, k, D))                 # (B, k, D)
        y_mask = mask.gather(1, idx)                                       # (B, k)
        assignment = selection_assignment(idx, y_mask) if with_assignment else None
        return Pooled(y.masked_fill(y_mask.unsqueeze(-1), 0.0), y_mask, assignment)
