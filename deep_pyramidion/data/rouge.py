"""ROUGE-1/2/L/Lsum with bootstrap intervals, fairseq-generate parsing and a Lead baseline.

Scores are F1 from the ``rouge-score`` package with ``use_stemmer=True``. Documents are marked text
(sentences joined by ``<q>``): the marker is removed before scoring and, for ROUGE-Lsum, the
sentences it separates are put one per line, which is what ``rougeLsum`` expects.

The scorer refuses to compare a hypothesis set that does not cover the reference set exactly
(:class:`MismatchError`): fairseq can drop documents (a last partial batch, or inputs skipped as
too long), and a ROUGE over a different set of documents is not comparable.
"""

import logging
import math
import re
import statistics
from dataclasses import dataclass, field
from typing import Dict, Iterable, List, Optional, Sequence, Tuple

from .io import DataError, iter_lines, normalize_whitespace
from .sentences import split_marked, split_sentences

logger = logging.getLogger(__name__)

METRICS = ("rouge1", "rouge2", "rougeL", "rougeLsum")
LABELS = {"rouge1": "R-1", "rouge2": "R-2", "rougeL": "R-L", "rougeLsum": "R-Lsum"}
SPM_SPACE = "\u2581"


class MismatchError(DataError):
    """The hypotheses do not cover exactly the reference documents."""


# --------------------------------------------------------------------------- text handling


def detokenize_pieces(text: str) -> str:
    """Undo sentencepiece pieces (``▁the ▁mo del`` -> ``the model``); other text is only
    whitespace-normalised. Same rule as fairseq's ``--bpe sentencepiece`` decoder."""
    if SPM_SPACE in text:
        text = text.replace(" ", "").replace(SPM_SPACE, " ")
    return normalize_whitespace(text)


def rouge_text(document: str) -> str:
    """Marked document -> the text given to rouge-score: one sentence per line, marker removed."""
    return "\n".join(split_marked(document))


def _score_chunk(args) -> List[Dict[str, Tuple[float, float, float]]]:
    pairs, metrics, use_stemmer = args
    from rouge_score import rouge_scorer  # imported here: only scoring needs it

    scorer = rouge_scorer.RougeScorer(list(metrics), use_stemmer=use_stemmer)
    rows = []
    for hyp, ref in pairs:
        scores = scorer.score(rouge_text(ref), rouge_text(hyp))  # (target, prediction)
        rows.append({m: (scores[m].precision, scores[m].recall, scores[m].fmeasure) for m in metrics})
    return rows


def score_pairs(
    hyps: Sequence[str],
    refs: Sequence[str],
    metrics: Sequence[str] = METRICS,
    use_stemmer: bool = True,
    workers: int = 1,
) -> Dict[str, List[Tuple[float, float, float]]]:
    """Per-document ``(precision, recall, f1)`` (0..1) for each metric.

    ``hyps[i]`` is scored against ``refs[i]``; both are marked documents (see module docstring).
    ``workers`` > 1 scores chunks of documents in parallel processes (same results, same order).
    """
    if len(hyps) != len(refs):
        raise MismatchError(f"{len(hyps)} hypotheses for {len(refs)} references")
    pairs = list(zip(hyps, refs))
    if workers > 1 and len(pairs) > 1:
        import multiprocessing
        import sys

        size = max(1, math.ceil(len(pairs) / (4 * workers)))
        chunks = [(pairs[i : i + size], tuple(metrics), use_stemmer) for i in range(0, len(pairs), size)]
        method = "fork" if sys.platform.startswith("linux") else "spawn"
        with multiprocessing.get_context(method).Pool(workers) as pool:
            rows = [row for chunk in pool.map(_score_chunk, chunks) for row in chunk]
    else:
        rows = _score_chunk((pairs, tuple(metrics), use_stemmer))
    return {m: [row[m] for row in rows] for m in metrics}


def bootstrap_interval(values: Sequence[float], samples: int, seed: int, confidence: float = 0.95) -> Tuple[float, float]:
    """Percentile interval of the mean of ``values`` over ``samples`` resamples (with
    replacement) of the documents. The resamples depend only on (number of documents, samples,
    seed), so systems scored on the same documents share them: a paired bootstrap."""
    import numpy as np

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
    """ROUGE of one system over n documents; values in percent (0..100)."""

    name: str
    n: int
    f1: Dict[str, float]
    precision: Dict[str, float]
    recall: Dict[str, float]
    interval: Dict[str, Tuple[float, float]] = field(default_factory=dict)

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
    """Mean F1/precision/recall (percent) and bootstrap intervals of the mean F1."""
    per_doc = score_pairs(hyps, refs, metrics, workers=workers)
    n = len(refs)
    score = SystemScore(name, n, {}, {}, {})
    for m in metrics:
        rows = per_doc[m]
        score.precision[m] = 100.0 * sum(r[0] for r in rows) / n if n else math.nan
        score.recall[m] = 100.0 * sum(r[1] for r in rows) / n if n else math.nan
        score.f1[m] = 100.0 * sum(r[2] for r in rows) / n if n else math.nan
        if bootstrap > 0 and n:
            low, high = bootstrap_interval([r[2] for r in rows], bootstrap, seed, confidence)
            score.interval[m] = (100.0 * low, 100.0 * high)
    return score


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


# --------------------------------------------------------------------------- Lead baseline


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
    return " <q> ".join(out)


def lead_baseline(sources: Sequence[str], refs: Sequence[str], budget: Optional[int] = None) -> Tuple[List[str], int]:
    """Lead summaries of ``sources`` at ``budget`` words (default: :func:`lead_budget` of refs)."""
    if len(sources) != len(refs):
        raise MismatchError(f"{len(sources)} lead sources for {len(refs)} references")
    budget = lead_budget(refs) if budget is None else budget
    return [lead_summary(s, budget) for s in sources], budget


# --------------------------------------------------------------------------- fairseq-generate output

_GENERATE_LINE = re.compile(r"^([STHD])-(\d+)\t(.*)$")


@dataclass
class GenerateOutput:
    """What a fairseq-generate log holds, by sample id (the 0-based line of the generated split).

    ``hyps`` are the first-best hypotheses, from ``D-`` lines when there are any, else ``H-``
    lines, detokenized when they still hold sentencepiece pieces. ``lines`` maps each hypothesis
    and reference id to its 1-based line in the file, for messages.
    """

    path: str
    hyps: Dict[int, str] = field(default_factory=dict)
    refs: Dict[int, str] = field(default_factory=dict)
    sources: Dict[int, str] = field(default_factory=dict)
    hyp_kind: str = ""
    ref_lines: Dict[int, int] = field(default_factory=dict)


def read_generate_output(path: str) -> GenerateOutput:
    """Parse fairseq-generate stdout / ``generate-{subset}.txt`` (S-, T-, H-, D- lines; the rest,
    logging and P- lines, ignored). With ``--nbest`` > 1 the first hypothesis per id is kept."""
    found = {"S": {}, "T": {}, "H": {}, "D": {}}
    ref_lines = {}
    for lineno, line in iter_lines(path):
        match = _GENERATE_LINE.match(line)
        if not match:
            continue
        kind, sample_id, rest = match.group(1), int(match.group(2)), match.group(3)
        if kind in "HD":
            parts = rest.split("\t", 1)
            try:
                float(parts[0])
            except ValueError:
                raise DataError(f"{path}:{lineno}: {kind}- line without a score: {line[:80]!r}") from None
            rest = parts[1] if len(parts) > 1 else ""
        if sample_id in found[kind]:
            if kind in "ST" and found[kind][sample_id] != rest:
                raise DataError(f"{path}:{lineno}: id {sample_id} appears twice with different {kind}- text")
            continue  # nbest: keep the first (best) hypothesis
        found[kind][sample_id] = rest
        if kind == "T":
            ref_lines[sample_id] = lineno
    kind = "D" if found["D"] else "H"
    out = GenerateOutput(path=path, hyp_kind=kind, ref_lines=ref_lines)
    out.hyps = {i: detokenize_pieces(t) for i, t in sorted(found[kind].items())}
    out.refs = {i: detokenize_pieces(t) for i, t in sorted(found["T"].items())}
    out.sources = {i: detokenize_pieces(t) for i, t in sorted(found["S"].items())}
    if found["D"] and found["H"] and set(found["D"]) != set(found["H"]):
        logger.warning("%s: H- and D- lines cover different ids; using D- lines", path)
    if not out.hyps:
        raise DataError(f"{path}: no H- or D- lines: not a fairseq-generate output (or run with --quiet)")
    logger.info("%s: %d hypotheses (%s- lines), %d references (T- lines)", path, len(out.hyps), kind, len(out.refs))
    return out


def _describe_ids(ids: Iterable[int], doc_ids: Optional[Sequence[str]], lines: bool = False, limit: int = 30) -> str:
    """``3 (P06-1112), 4`` for 0-based ids, or 1-based line numbers when ``lines``."""
    ids = sorted(ids)
    parts = []
    for i in ids[:limit]:
        named = doc_ids[i] if doc_ids is not None and 0 <= i < len(doc_ids) else None
        shown = i + 1 if lines else i
        parts.append(f"{shown} ({named})" if named else str(shown))
    text = ", ".join(parts)
    if len(ids) > limit:
        text += f", ... ({len(ids) - limit} more)"
    return text


def check_same_ids(
    hyp_ids: Iterable[int],
    ref_ids: Iterable[int],
    what: str,
    doc_ids: Optional[Sequence[str]] = None,
    lines: bool = False,
) -> None:
    """Raise :class:`MismatchError` unless both id sets are equal; the message lists the ids
    present on one side only: 0-based sample ids, or 1-based line numbers when ``lines``, with the
    document ids when ``doc_ids`` is given."""
    hyp_ids, ref_ids = set(hyp_ids), set(ref_ids)
    if hyp_ids == ref_ids:
        return
    unit = "lines" if lines else "ids"
    problems = []
    missing = ref_ids - hyp_ids
    extra = hyp_ids - ref_ids
    if missing:
        problems.append(
            f"{len(missing)} of {len(ref_ids)} references have no hypothesis: "
            f"{unit} {_describe_ids(missing, doc_ids, lines)}"
        )
    if extra:
        problems.append(
            f"{len(extra)} hypotheses have no reference: {unit} {_describe_ids(extra, doc_ids, lines)}"
        )
    raise MismatchError(
        f"refusing to report ROUGE on a different set of documents than the references ({what}): "
        + "; ".join(problems)
    )


def check_generate_covers_refs(gen: GenerateOutput, n_refs: Optional[int], doc_ids=None) -> None:
    """The hypotheses of a generate log must cover the references exactly.

    With ``n_refs`` (the reference file's line count) the expected ids are ``0..n_refs-1``.
    Without it the references are the T- lines; ids missing from the log altogether (a gap below
    the largest id) are reported too, but a dropped tail cannot be seen: pass the reference file.
    """
    if n_refs is not None:
        check_same_ids(gen.hyps, range(n_refs), f"{gen.path} vs a reference file of {n_refs} lines", doc_ids)
        return
    if not gen.refs:
        raise DataError(f"{gen.path}: no T- lines; pass the reference file with --ref")
    seen = set(gen.refs) | set(gen.hyps) | set(gen.sources)
    expected = set(range(max(seen) + 1))
    gaps = expected - seen
    if gaps:
        raise MismatchError(
            f"refusing to report ROUGE: {gen.path} has no lines at all for ids {_describe_ids(gaps, doc_ids)} "
            "(skipped by fairseq, e.g. --skip-invalid-size-inputs-valid-test?); pass --ref to score "
            "against the full reference set"
        )
    no_target = expected - set(gen.refs)
    if no_target:
        raise DataError(f"{gen.path}: no T- line for ids {_describe_ids(no_target, doc_ids)}; pass --ref")
    check_same_ids(gen.hyps, expected, f"{gen.path}: H-/D- lines vs T- lines", doc_ids)
    logger.warning(
        "%s: scoring against its own T- lines; documents missing at the end of the set cannot be "
        "detected that way: pass --ref with the reference file",
        gen.path,
    )


def check_targets_match(gen: GenerateOutput, refs: Sequence[str], ref_path: str, max_bad: float = 0.5) -> None:
    """Guard against scoring with the wrong reference file: when the log has T- lines, most of
    them must agree with the reference file (token overlap >= 0.5; unknown pieces aside)."""
    checked = bad = 0
    examples = []
    for i, target in gen.refs.items():
        if i >= len(refs):
            continue
        a = set(re.sub(r"<<unk>>|<unk>", " ", target).lower().split()) - {"<q>"}
        b = set(refs[i].lower().split()) - {"<q>"}
        checked += 1
        if a or b:
            overlap = len(a & b) / max(1, len(a | b))
            if overlap < 0.5:
                bad += 1
                if len(examples) < 3:
                    examples.append(f"id {i} ({gen.path}:{gen.ref_lines.get(i, '?')} vs {ref_path}:{i + 1})")
    if checked and bad > max_bad * checked:
        raise MismatchError(
            f"the T- lines of {gen.path} do not match {ref_path} ({bad} of {checked} differ, e.g. "
            f"{', '.join(examples)}): wrong reference file or wrong --gen-subset?"
        )


# --------------------------------------------------------------------------- files -> report


def read_documents(path: str, what: str, allow_empty: bool = False) -> List[str]:
    """One document per line; an empty line is an error naming file and line unless allowed
    (an empty hypothesis is a legitimate, zero-scoring output; an empty reference is not)."""
    docs = []
    for lineno, line in iter_lines(path):
        doc = detokenize_pieces(line)
        if not doc and not allow_empty:
            raise DataError(f"{path}:{lineno}: empty {what}")
        docs.append(doc)
    return docs


@dataclass
class Report:
    systems: List[SystemScore]
    n: int
    bootstrap: int
    seed: int
    confidence: float
    lead_budget: Optional[int] = None
    sources: Dict[str, str] = field(default_factory=dict)

    def table(self) -> str:
        head = f"ROUGE F1 x100 over {self.n} documents (rouge-score, stemmer on"
        if self.bootstrap > 0:
            head += f"; {self.confidence:.0%} bootstrap CI, {self.bootstrap} resamples, seed {self.seed}"
        head += ")"
        if self.lead_budget is not None:
            head += f"\nlead = first sentences of each source, {self.lead_budget} words (median reference length)"
        return head + "\n" + format_table(self.systems)

    def as_dict(self) -> dict:
        return {
            "n": self.n,
            "metric": "F1 x100, rouge-score use_stemmer=True; rougeLsum on <q>-separated sentences",
            "bootstrap": self.bootstrap,
            "seed": self.seed,
            "confidence": self.confidence,
            "lead_budget_words": self.lead_budget,
            "inputs": self.sources,
            "systems": {s.name: s.as_dict() for s in self.systems},
        }


def evaluate_files(
    hyp: Optional[str] = None,
    ref: Optional[str] = None,
    generate_output: Optional[str] = None,
    ids: Optional[str] = None,
    lead_source: Optional[str] = None,
    bootstrap: int = 1000,
    seed: int = 1,
    confidence: float = 0.95,
    name: str = "model",
    workers: int = 1,
) -> Report:
    """Score ``hyp`` against ``ref`` (one document per line), or a fairseq-generate log (its T-
    lines, or ``ref`` when given, as references); optionally add the Lead row from ``lead_source``.

    Raises :class:`MismatchError` when hypotheses and references are not the same documents.
    """
    if (hyp is None) == (generate_output is None):
        raise ValueError("give exactly one of hyp and generate_output")
    if hyp is not None and ref is None:
        raise ValueError("hyp needs ref")
    inputs = {k: v for k, v in dict(hyp=hyp, ref=ref, generate_output=generate_output, ids=ids, lead_source=lead_source).items() if v}
    refs = read_documents(ref, "reference") if ref else None
    doc_ids = read_documents(ids, "document id") if ids else None
    if doc_ids is not None and refs is not None and len(doc_ids) != len(refs):
        raise DataError(f"{ids} has {len(doc_ids)} lines but {ref} has {len(refs)}")

    if hyp is not None:
        hyps = read_documents(hyp, "hypothesis", allow_empty=True)
        check_same_ids(range(len(hyps)), range(len(refs)), f"{hyp} vs {ref}", doc_ids, lines=True)
    else:
        gen = read_generate_output(generate_output)
        if refs is not None:
            check_generate_covers_refs(gen, len(refs), doc_ids)
            check_targets_match(gen, refs, ref)
        else:
            check_generate_covers_refs(gen, None, doc_ids)
            refs = []
            for i, text in gen.refs.items():
                if not text:
                    raise DataError(f"{generate_output}:{gen.ref_lines[i]}: empty reference (T-{i})")
                refs.append(text)
        hyps = [gen.hyps[i] for i in range(len(refs))]

    if not refs:
        raise DataError(f"{ref or generate_output}: no documents to score")
    report = Report([], len(refs), bootstrap, seed, confidence, sources=inputs)
    report.systems.append(score_system(name, hyps, refs, bootstrap, seed, confidence, workers=workers))
    if lead_source:
        sources = read_documents(lead_source, "source document", allow_empty=True)
        if len(sources) != len(refs):
            raise MismatchError(
                f"refusing to score the Lead baseline: {lead_source} has {len(sources)} documents "
                f"for {len(refs)} references"
            )
        leads, report.lead_budget = lead_baseline(sources, refs)
        report.systems.append(score_system("lead", leads, refs, bootstrap, seed, confidence, workers=workers))
    return report
