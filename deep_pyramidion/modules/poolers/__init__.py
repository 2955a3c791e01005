"""Poolers between encoder layers (``--encoder-pooling``): the registry and one file per family.

    registry.py   the interface (Pooler, Pooled, Assignment), POOLERS, build_pooler
    topk.py       topk (the paper's successive-halving top-k), hard-topk
    windows.py    avg, max, conv, dilated-conv (the Compressive Transformer's compressions)
    most_used.py  most-used (attention received)
    seqpool.py    SeqPool (standalone) and its windowed pooler seqpool

Importing this package registers every pooler.
"""
from deep_pyramidion.modules.poolers import most_used, topk, windows  # noqa: F401  (register)
from deep_pyramidion.modules.poolers.registry import (
    POOLERS, Assignment, Pooled, Pooler, build_pooler, keep_in_graph, register_pooler,
)
from deep_pyramidion.modules.poolers.seqpool import SeqPool

__all__ = ["POOLERS", "Assignment", "Pooled", "Pooler", "SeqPool", "build_pooler",
           "keep_in_graph", "register_pooler"]
