"""The pooler interface and registry: ``--encoder-pooling NAME`` picks any registered pooler.

Shape legend (batch-first):
    B   batch          n   input length        D   channels
    k   output width, min(width, n): a batch narrower than the schedule's width is not padded up
    M   inputs an output mixes (its members)

Every pooler is an ``nn.Module`` built as ``cls.from_config(embed_dim, width, config)`` and called
as ``pooler(x, mask, usage=None, with_assignment=False) -> Pooled``: x (B, n, D), mask (B, n) bool
(True = padding), usage (B, n) the attention each token received in the layer just run (only
poolers with ``needs_usage`` read it). ``Pooled.assignment`` says which inputs each output mixes
and with which weight, for poolers whose outputs are weighted sums of inputs (the analysis tools
read it; nothing has to be replayed); it is None where an output is not such a sum (max, conv).

A new pooler: subclass :class:`Pooler`, implement ``from_config`` and ``forward``, set the
traits below that hold for it, decorate it with ``@register_pooler("name")`` and import its file in
``poolers/__init__.py``. The registry is the one list of names: ``--encoder-pooling`` and
``--memory-compression`` accept what is registered, and config.py reads the names and traits
from here (POOLINGS, USAGE_POOLINGS, TRAINABLE_POOLINGS, SCORER_POOLINGS).
"""
from typing import Callable, Dict, NamedTuple, Optional

import torch
import torch.nn as nn
from torch import Tensor

POOLERS: Dict[str, Callable[..., "Pooler"]] = {}


class Assignment(NamedTuple):
    index: Tensor    # (B, k, M) long: input positions output j mixes; -1 = no input
    weight: Tensor   # (B, k, M) float: their weights (0 for -1 and for padding)


class Pooled(NamedTuple):
    x: Tensor                               # (B, k, D)
    mask: Tensor                            # (B, k) True where the output holds only padding
    assignment: Optional[Assignment] = None


class Pooler(nn.Module):
    """Base of every pooler: the interface above, and the pass-through of short batches."""

    # traits the config's checks read (config.py derives its lists of names from them)
    needs_usage = False   # reads the attention each token received (most-used)
    trainable = False     # has parameters that learn (a compressed memory's reconstruction loss
                          # trains them)
    has_scorer = False    # ranks tokens with a learned scorer (what --selection-loss teaches)

    def __init__(self, width: int):
        super().__init__()
        if not isinstance(width, int) or width <= 0:
            raise ValueError(f"pooling width must be a positive integer, got {width!r}")
        self.width = width

    @classmethod
    def from_config(cls, embed_dim: int, width: int, config) -> "Pooler":
        return cls(width)

    def forward(self, x: Tensor, mask: Tensor, usage: Optional[Tensor] = None,
                with_assignment: bool = False) -> Pooled:
        raise NotImplementedError

    def pass_through(self, x: Tensor, mask: Tensor, with_assignment: bool,
                     dependency: Optional[Tensor] = None) -> Pooled:
        """A batch no wider than the width: every token is kept as it is.

        ``dependency``: values computed from this pooler's parameters (e.g. the scores), kept in
        the graph with weight 0 so that every parameter gets a gradient (see keep_in_graph).
        """
        if dependency is None:
            params = [p.sum() for p in self.parameters()]
            dependency = torch.stack(params) if params else None
        y = x if dependency is None else keep_in_graph(x, dependency)
        return Pooled(y, mask, identity_assignment(mask) if with_assignment else None)


def register_pooler(name: str):
    def wrap(cls):
        if name in POOLERS:
            raise ValueError(f"pooler {name!r} registered twice")
        POOLERS[name] = cls
        return cls

    return wrap


def build_pooler(name: str, embed_dim: int, width: int, config) -> Pooler:
    if name not in POOLERS:
        raise ValueError(f"--encoder-pooling: unknown pooler {name!r}; choose from {sorted(POOLERS)}")
    return POOLERS[name].from_config(embed_dim, width, config)


def keep_in_graph(x: Tensor, unused: Tensor) -> Tensor:
    """Return x, with a zero-valued dependency on ``unused``.

    When a batch is no wider than the pooler's width nothing is selected and the scorer would get
    no gradient; DDP (pytorch_ddp without --find-unused-parameters) then stops with "parameters that
    were not used". A zero-weighted term keeps every parameter in the graph at negligible cost.
    """
    return x + unused.sum().to(x.dtype) * 0.0


def identity_assignment(mask: Tensor) -> Assignment:
    """Output j is input j alone, with weight 1 (0 for padding): (B, n, 1) each."""
    B, n = mask.shape
    index = torch.arange(n, device=mask.device).expand(B, n).unsqueeze(-1)
    return Assignment(index, (~mask).float().unsqueeze(-1))


def selection_assignment(index: Tensor, mask: Tensor) -> Assignment:
    """Output j is the single input ``index[b, j]`` (B, k), weight 1 unless it is padding."""
    return Assignment(index.unsqueeze(-1), (~mask).float().unsqueeze(-1))
