"""Poolers between encoder layers (``--encoder-pooling``): the registry and one file per family.

    registry.py   the interface (Pooler, Pooled, Assignment), POOLERS, build_pooler
    topk.py       topk (the paper's successive-halving top-k), hard-topk
    windows.py    avg, max, conv, dilated-conv (the Compressive Transformer's compressions)
    most_used.py  most-used (attention received)
    seqpool.py    SeqPool (standalone) and its windowed pooler seqpool

Importing this package registers every pooler.
"""
# registers every pooler; the import order is the order names are listed in (flag help, errors)
from deep_pyramidion.modules.poolers import topk, windows, most_used  # noqa: F401
from deep_pyramidion.modules.poolers.registry import (
    POOLERS, Assignment, Pooled, Pooler, build_pooler, keep_in_graph, register_pooler,
)
from deep_pyramidion.modules.poolers.seqpool import SeqPool

__all__ = ["POOLERS", "Assignment", "Pooled", "Pooler", "SeqPool", "build_pooler",
           "keep_in_graph", "register_pooler"]
