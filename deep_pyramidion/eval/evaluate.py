"""Files -> ROUGE report: what ``scripts/score.py`` computes and prints.

The scorer refuses to compare a hypothesis set that does not cover the reference set exactly
(:class:`~deep_pyramidion.plumbing.errors.MismatchError`): fairseq can drop documents (a last partial
batch, or inputs skipped as too long), and a ROUGE over a different set of documents is not
comparable. A fairseq-generate output must be one whole run (see
:mod:`deep_pyramidion.eval.generate_output`).
"""

import logging
from dataclasses import dataclass, field
from typing import Dict, List, Optional

from deep_pyramidion.plumbing.errors import DataError, MismatchError
from deep_pyramidion.plumbing.lines import iter_document_lines

from .generate_output import check_generate_covers_refs, check_same_ids, check_targets_match, read_generate_output
from .lead import lead_baseline
from .rouge import BY_SPLITTER, MAX_BOOTSTRAP, SystemScore, describe_sentences, detokenize_pieces, format_table, score_system

logger = logging.getLogger(__name__)


def read_documents(path: str, what: str, allow_empty: bool = False) -> List[str]:
    """One document per line; an empty line is an error naming file and line unless allowed
    (an empty hypothesis is a legitimate, zero-scoring output; an empty reference is not)."""
    docs = []
    for lineno, line in iter_document_lines(path):
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
        if any(s.sentences for s in self.systems):
            head += "\n" + describe_sentences(self.systems)
        return head + "\n" + format_table(self.systems)

    def as_dict(self) -> dict:
        split = any(BY_SPLITTER in s.sentences.values() for s in self.systems)
        metric = "F1 x100, rouge-score use_stemmer=True; rougeLsum on <q>-separated sentences"
        if split:
            metric += " (text without <q> markers split by deep_pyramidion.data.sentences.split_sentences)"
        return {
            "n": self.n,
            "metric": metric,
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

    Raises :class:`MismatchError` when hypotheses and references are not the same documents,
    :class:`DataError` on bad input (a generate log that is not one whole run included).
    """
    if (hyp is None) == (generate_output is None):
        raise ValueError("give exactly one of hyp and generate_output")
    if hyp is not None and ref is None:
        raise ValueError("hyp needs ref")
    if not 0 <= bootstrap <= MAX_BOOTSTRAP:
        raise ValueError(f"bootstrap must be between 0 and {MAX_BOOTSTRAP}, got {bootstrap}")
    inputs = {k: v for k, v in dict(hyp=hyp, ref=ref, generate_output=generate_output, ids=ids, lead_source=lead_source).items() if v}
    refs = read_documents(ref, "reference") if ref else None
    doc_ids = read_documents(ids, "document id") if ids else None
    if doc_ids is not None and refs is not None and len(doc_ids) != len(refs):
        raise DataError(f"{ids} has {len(doc_ids)} lines but {ref} has {len(refs)}")

    if hyp is not None:
        hyps = read_documents(hyp, "hypothesis", allow_empty=True)
        check_same_ids(range(len(hyps)), range(len(refs)), f"{hyp} vs {ref}", doc_ids, lines=True)
    else:
        gen = read_generate_output(generate_output, require_complete=False)
        gen.check_whole(len(refs) if refs is not None else None)
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
