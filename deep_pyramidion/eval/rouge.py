"""ROUGE-1/2/L/Lsum F1 per document and per system, bootstrap intervals, the table.

Scores are F1 from the ``rouge-score`` package with ``use_stemmer=True``. ROUGE-Lsum is computed on
sentences, one per line, which is what ``rougeLsum`` expects (and how published R-Lsum figures are
made); without them R-Lsum silently equals R-L. Where the sentences come from is decided per side
(hypotheses, references) of a comparison:

- marked text (the project's format: sentences joined by `` <q> ``, as in the ``.tgt`` files and
  the model's outputs; any document of the side holds the marker): the marker separates them and
  is never scored as a word;
- unmarked text (plain summaries, e.g. another system's outputs): the sentences are found by the
  project's splitter, :func:`deep_pyramidion.data.sentences.split_sentences`.

The choice is reported with the scores (:attr:`SystemScore.sentences`), so a table always says how
its R-Lsum was made.
"""

import logging
import math
import os
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

from deep_pyramidion.data.sentences import MARKER, split_marked, split_sentences
from deep_pyramidion.plumbing.errors import MismatchError
from deep_pyramidion.plumbing.lines import normalize_whitespace

logger = logging.getLogger(__name__)

METRICS = ("rouge1", "rouge2", "rougeL", "rougeLsum")
LABELS = {"rouge1": "R-1", "rouge2": "R-2", "rougeL": "R-L", "rougeLsum": "R-Lsum"}
SPM_SPACE = "\u2581"
#: most bootstrap resamples accepted: beyond it the interval's third digit no longer moves, and
#: the cost (resamples x documents) would be set by a number instead of by the input
MAX_BOOTSTRAP = 100_000
#: how sentences were found for R-Lsum (values of :attr:`SystemScore.sentences`)
BY_MARKER = "marker"
BY_SPLITTER = "splitter"


def detokenize_pieces(text: str) -> str:
    """Undo sentencepiece pieces (``▁the ▁mo del`` -> ``the model``); other text is only
    whitespace-normalised. Same rule as fairseq's ``--bpe sentencepiece`` decoder."""
    if SPM_SPACE in text:
        text = text.replace(" ", "").replace(SPM_SPACE, " ")
    return normalize_whitespace(text)


def is_marked(documents: Sequence[str]) -> bool:
    """Whether a side of a comparison is marked text (any document holds the ``<q>`` marker)."""
    return any(MARKER in d for d in documents)


def rouge_text(document: str, marked: Optional[bool] = None) -> str:
    """A document -> the text given to rouge-score: one sentence per line, marker removed.

    ``marked``: the sentences are separated by the marker (True) or must be found by the
    sentence splitter (False); None decides for this document alone (does it hold the marker?).
    """
    if marked is None:
        marked = MARKER in document
    sentences = split_marked(document) if marked else split_sentences(document)
    return "\n".join(sentences)


def _score_chunk(args) -> List[Dict[str, Tuple[float, float, float]]]:
    pairs, metrics, use_stemmer, hyp_marked, ref_marked = args
    from rouge_score import rouge_scorer  # imported here: only scoring needs it

    scorer = rouge_scorer.RougeScorer(list(metrics), use_stemmer=use_stemmer)
    rows = []
    for hyp, ref in pairs:
        scores = scorer.score(rouge_text(ref, ref_marked), rouge_text(hyp, hyp_marked))  # (target, prediction)
        rows.append({m: (scores[m].precision, scores[m].recall, scores[m].fmeasure) for m in metrics})
    return rows


def usable_workers(workers: int, jobs: int) -> int:
    """``workers`` bounded by the CPUs and the number of jobs (a process per job at most)."""
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    used = max(1, min(workers, cpus, jobs))
    if used < workers:
        logger.info("using %d worker processes, not %d (CPUs: %d, chunks of documents: %d)", used, workers, cpus, jobs)
    return used


def score_pairs(
    hyps: Sequence[str],
    refs: Sequence[str],
    metrics: Sequence[str] = METRICS,
    use_stemmer: bool = True,
    workers: int = 1,
    hyp_marked: Optional[bool] = None,
    ref_marked: Optional[bool] = None,
) -> Dict[str, List[Tuple[float, float, float]]]:
    """Per-document ``(precision, recall, f1)`` (0..1) for each metric.

    ``hyps[i]`` is scored against ``refs[i]``. ``hyp_marked`` / ``ref_marked`` say whether a side
    is marked text (module docstring); None decides it per document. ``workers`` > 1 scores chunks
    of documents in parallel processes (same results, same order).
    """
    if len(hyps) != len(refs):
        raise MismatchError(f"{len(hyps)} hypotheses for {len(refs)} references")
    pairs = list(zip(hyps, refs))
    options = (tuple(metrics), use_stemmer, hyp_marked, ref_marked)
    if workers > 1 and len(pairs) > 1:
        import multiprocessing
        import sys

        size = max(1, math.ceil(len(pairs) / (4 * workers)))
        chunks = [(pairs[i : i + size],) + options for i in range(0, len(pairs), size)]
        method = "fork" if sys.platform.startswith("linux") else "spawn"
        with multiprocessing.get_context(method).Pool(usable_workers(workers, len(chunks))) as pool:
            rows = [row for chunk in pool.map(_score_chunk, chunks) for row in chunk]
    else:
        rows = _score_chunk((pairs,) + options)
    return {m: [row[m] for row in rows] for m in metrics}


def bootstrap_interval(values: Sequence[float], samples: int, seed: int, confidence: float = 0.95) -> Tuple[float, float]:
    """Percentile interval of the mean of ``values`` over ``samples`` resamples (with
    replacement) of the documents. The resamples depend only on (number of documents, samples,
    seed), so systems scored on the same documents share them: a paired bootstrap.

    ``samples`` above :data:`MAX_BOOTSTRAP` is refused (ValueError): memory and time would follow
    the number, not the input."""
    import numpy as np

    if samples > MAX_BOOTSTRAP:
        raise ValueError(f"at most {MAX_BOOTSTRAP} bootstrap resamples, got {samples}")
    values = np.asarray(values, dtype=np.float64)
    n = len(values)
    if samples <= 0 or n == 0:
        return (math.nan, math.nan)
    rng = np.random.default_rng(seed)
    means = np.empty(samples)
    chunk = max(1, 4_000_000 // n)  # resamples drawn at a time: bounds the index matrix's memory
    for start in range(0, samples, chunk):
        count = min(chunk, samples - start)
        means[start : start + count] = values[rng.integers(0, n, size=(count, n))].mean(axis=1)
    tail = (1.0 - confidence) / 2.0 * 100.0
    low, high = np.percentile(means, [tail, 100.0 - tail])
    return float(low), float(high)


@dataclass
class SystemScore:
    """ROUGE of one system over n documents; values in percent (0..100). ``sentences`` says how
    the R-Lsum sentences were found for each side (:data:`BY_MARKER` or :data:`BY_SPLITTER`)."""

    name: str
    n: int
    f1: Dict[str, float]
    precision: Dict[str, float]
    recall: Dict[str, float]
    interval: Dict[str, Tuple[float, float]] = field(default_factory=dict)
    sentences: Dict[str, str] = field(default_factory=dict)

    def as_dict(self) -> dict:
        out = {"n": self.n}
        for m in self.f1:
            low, high = self.interval.get(m, (math.nan, math.nan))
            out[m] = {
                "f1": self.f1[m],
                "low": None if math.isnan(low) else low,
                "high": None if math.isnan(high) else high,
                "precision": self.precision[m],
                "recall": self.recall[m],
            }
        if self.sentences:
            out["rougeLsum_sentences"] = dict(self.sentences)
        return out


def score_system(
    name: str,
    hyps: Sequence[str],
    refs: Sequence[str],
    bootstrap: int = 1000,
    seed: int = 1,
    confidence: float = 0.95,
    metrics: Sequence[str] = METRICS,
    workers: int = 1,
) -> SystemScore:
    """Mean F1/precision/recall (percent) and bootstrap intervals of the mean F1. Each side is
    marked or plain text as a whole (:func:`is_marked`), see the module docstring."""
    hyp_marked, ref_marked = is_marked(hyps), is_marked(refs)
    per_doc = score_pairs(hyps, refs, metrics, workers=workers, hyp_marked=hyp_marked, ref_marked=ref_marked)
    n = len(refs)
    score = SystemScore(name, n, {}, {}, {})
    score.sentences = {
        "hypotheses": BY_MARKER if hyp_marked else BY_SPLITTER,
        "references": BY_MARKER if ref_marked else BY_SPLITTER,
    }
    for m in metrics:
        rows = per_doc[m]
        score.precision[m] = 100.0 * sum(r[0] for r in rows) / n if n else math.nan
        score.recall[m] = 100.0 * sum(r[1] for r in rows) / n if n else math.nan
        score.f1[m] = 100.0 * sum(r[2] for r in rows) / n if n else math.nan
        if bootstrap > 0 and n:
            low, high = bootstrap_interval([r[2] for r in rows], bootstrap, seed, confidence)
            score.interval[m] = (100.0 * low, 100.0 * high)
    return score


def describe_sentences(systems: Sequence[SystemScore]) -> str:
    """One header line: where the R-Lsum sentences of each side came from."""
    groups: Dict[str, List[str]] = {BY_MARKER: [], BY_SPLITTER: []}
    refs = []
    for s in systems:
        if "references" in s.sentences and s.sentences["references"] not in refs:
            refs.append(s.sentences["references"])
    for how in refs:
        groups[how].append("references")
    for s in systems:
        if "hypotheses" in s.sentences:
            groups[s.sentences["hypotheses"]].append(s.name)
    parts = []
    if groups[BY_MARKER]:
        parts.append("at the <q> markers for " + ", ".join(groups[BY_MARKER]))
    if groups[BY_SPLITTER]:
        parts.append("by the sentence splitter (text without <q> markers) for " + ", ".join(groups[BY_SPLITTER]))
    return "R-Lsum sentences: " + "; ".join(parts)


def format_table(systems: Sequence[SystemScore], metrics: Sequence[str] = METRICS) -> str:
    """A fixed-width table: one row per system, F1 and its interval per metric."""
    with_ci = any(s.interval for s in systems)
    width = 23 if with_ci else 7
    name_width = max([6] + [len(s.name) for s in systems])
    header = f"{'system':<{name_width}} {'n':>6}  " + "  ".join(f"{LABELS[m]:<{width}}" for m in metrics)
    rows = [header.rstrip()]
    for s in systems:
        cells = []
        for m in metrics:
            cell = f"{s.f1[m]:6.2f}"
            if with_ci:
                low, high = s.interval.get(m, (math.nan, math.nan))
                cell += f" [{low:.2f}, {high:.2f}]"
            cells.append(f"{cell:<{width}}")
        rows.append((f"{s.name:<{name_width}} {s.n:>6}  " + "  ".join(cells)).rstrip())
    return "\n".join(rows)
