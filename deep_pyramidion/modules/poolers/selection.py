"""The selection loss: teach every token scorer which input tokens the target uses.

Shape legend (batch-first): B batch, T input length, L target length, n a pooler's input width,
k its output width, M inputs mixed into one output.

Why: a trainable top-k learns what to keep only through the decoder's loss, and that signal reaches
a token's score only through the pair weights of the tournament it played: a token paired with a
much better one has weight ~0 and gets ~0 gradient, so a token the summary needs but that starts
with a low score is never kept and never learns to be (benchmarks/selection/diagnose.py measures
it: the paper's scorer ends up rating the needed tokens *below* the others). The target says which
tokens the summary uses, so it can supervise the scorer directly, as content selectors for
summarization do (Gehrmann et al., 2018, "Bottom-Up Abstractive Summarization"):

    label_t = 1 if the id of input token t occurs in the same document's target, else 0
    loss    = sum over poolers of mean over real inputs of BCE(scorer logit, label)

A pooler after the first reads pooled outputs, not tokens: an output's label is the weighted mean
of its members' labels (the assignment's weights, detached). Padding counts for nothing.

The labels are a heuristic on real text (function words occur in every abstract); on a task where
the target copies a few places of the input they are exact. Training only: inference never sees
the target, and the scorer alone decides what is kept.
"""
from typing import Iterable, Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor


def selection_labels(src_tokens: Tensor, target_tokens: Tensor, ignore: Iterable[int]) -> Tensor:
    """(B, T) source ids, (B, L) target ids (any padding among ``ignore``) -> (B, T) float: 1
    where the source token's id occurs in the same row of the target."""
    target = target_tokens.clone()
    for special in ignore:
        target[target == special] = -1                     # matches no source id
    # one row at a time keeps the (T, L) comparison small for long inputs
    rows = [(src.unsqueeze(-1) == tgt.unsqueeze(0)).any(-1) for src, tgt in zip(src_tokens, target)]
    return torch.stack(rows).float()                       # (B, T)


def selection_loss(records: Sequence, poolers: Mapping[str, torch.nn.Module], labels: Tensor) -> Tensor:
    """``records``: the pyramid's PoolingRecords (run with record_pooling, in layer order), whose
    first input is the token sequence ``labels`` (B, T) describes. Returns the summed mean BCE of
    every scorer's logits against its inputs' labels (a 0-dim tensor; 0 when no pooler scores)."""
    total = labels.new_zeros(())
    for record in records:
        pooler = poolers[str(record.layer)]
        real = ~record.mask                                               # (B, n)
        scorer = getattr(pooler, "scorer", None)
        if scorer is not None and real.any():
            logits = scorer(record.x).float()                             # (B, n)
            total = total + F.binary_cross_entropy_with_logits(logits[real], labels[real])
        assignment = record.pooled.assignment
        if assignment is None:
            break                                                         # nothing pooled further
        index, weight = assignment.index, assignment.weight.detach().float()   # (B, k, M)
        members = labels.gather(1, index.clamp(min=0).flatten(1)).view_as(weight)
        mass = weight.sum(-1).clamp(min=1e-9)
        labels = (weight * members).sum(-1) / mass                        # (B, k)
    return total


__all__ = ["selection_labels", "selection_loss"]
