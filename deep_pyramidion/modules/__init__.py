"""Building blocks of the pyramidion encoder.

Importing this package registers every pooler behind ``--encoder-pooling`` (pooling.py: topk,
hard-topk; compression.py: avg, max, conv, dilated-conv, most-used; seqpool.py: seqpool) and
exports :class:`SeqPool`, the standalone ``(B, L, D) -> (B, D)`` module.
"""
from deep_pyramidion.modules import compression, pooling  # noqa: F401  (register poolers)
from deep_pyramidion.modules.seqpool import SeqPool

__all__ = ["SeqPool"]
