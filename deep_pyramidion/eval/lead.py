"""The Lead baseline: the first sentences of each source, cut to the median reference length.

A summarizer that does not beat Lead has not learnt to summarize; the table prints both rows on the
same documents and the same bootstrap resamples.
"""

import statistics
from typing import List, Optional, Sequence, Tuple

from deep_pyramidion.data.sentences import SEPARATOR, split_marked, split_sentences
from deep_pyramidion.plumbing.errors import MismatchError


def count_words(document: str) -> int:
    return sum(len(s.split()) for s in split_marked(document))


def lead_budget(refs: Sequence[str]) -> int:
    """Median reference length in words (marker excluded), rounded, at least 1."""
    if not refs:
        return 1
    return max(1, int(round(statistics.median(count_words(r) for r in refs))))


def lead_summary(source: str, budget: int) -> str:
    """The first ``budget`` words of ``source`` as whole sentences, the last one cut to fit,
    joined with the marker (so ROUGE-Lsum sees the sentence structure)."""
    out: List[str] = []
    left = budget
    # only the first budget + 1 words can matter (a boundary depends on the next character only)
    prefix = " ".join(source.split()[: budget + 1])
    for sentence in split_sentences(prefix):
        if left <= 0:
            break
        tokens = sentence.split()
        out.append(" ".join(tokens[:left]))
        left -= min(left, len(tokens))
    return SEPARATOR.join(out)


def lead_baseline(sources: Sequence[str], refs: Sequence[str], budget: Optional[int] = None) -> Tuple[List[str], int]:
    """Lead summaries of ``sources`` at ``budget`` words (default: :func:`lead_budget` of refs)."""
    if len(sources) != len(refs):
        raise MismatchError(f"{len(sources)} lead sources for {len(refs)} references")
    budget = lead_budget(refs) if budget is None else budget
    return [lead_summary(s, budget) for s in sources], budget
