"""Building blocks of the pyramidion encoder, in plain PyTorch (no fairseq).

    chunking.py     pad to blocks, select the live chunks, run a layer blockwise
    layer.py        what the patterns need from an encoder layer (protocol), LayerOutput
    attention.py    --encoder-attention patterns: full, blockwise, strided, fixed (+ registry)
    memory.py       blockwise-memory: previous chunk + compressed memory (Compressive Transformer)
    poolers/        --encoder-pooling: registry + one file per family; SeqPool
    pyramid.py      the encoder stack: layers under a pattern, pooling between them

Importing this package registers every attention pattern and every pooler, and exports
:class:`SeqPool`, the standalone ``(B, L, D) -> (B, D)`` module.
"""
from deep_pyramidion.modules import memory  # noqa: F401  (registers blockwise-memory)
from deep_pyramidion.modules.attention import (
    ATTENTION_PATTERNS, AttentionPattern, build_attention_pattern, register_attention,
)
from deep_pyramidion.modules.poolers import POOLERS, Pooled, Pooler, SeqPool, build_pooler, register_pooler
from deep_pyramidion.modules.pyramid import PyramidOutput, run_pyramid

__all__ = ["ATTENTION_PATTERNS", "AttentionPattern", "POOLERS", "Pooled", "Pooler",
           "PyramidOutput", "SeqPool", "build_attention_pattern", "build_pooler",
           "register_attention", "register_pooler", "run_pyramid"]
