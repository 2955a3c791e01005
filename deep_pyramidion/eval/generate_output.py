"""fairseq-generate outputs: reading them, and refusing one that is not whole.

fairseq-generate writes, per document (``sample_id`` = 0-based line of the generated split)::

    S-{id}\\t{source}           T-{id}\\t{reference}           (once per document)
    H-{id}\\t{score}\\t{pieces}   D-{id}\\t{score}\\t{detokenized}   P-{id}\\t{positional scores}
                                  (once per hypothesis, --nbest of them, best first)

interleaved with log lines, and when it finishes (with references) the closing line
``Generate {subset} with beam={beam}: {scores}`` (``fairseq_cli/generate.py``). The log line
``Translated N sentences (...)`` is accepted as the end of a run without references.

An output is complete (:meth:`GenerateOutput.check_complete`) only when the file ends with a newline
and the closing line, holds one run (nothing generated after the closing line, no document twice),
every ``H-``/``D-``/``P-`` line is whole (an integer id, a numeric score, numeric positional scores,
each hypothesis as ``H`` [``D``] ``P`` in that order, ``D-`` lines for every hypothesis or for none),
and, when the number of documents is known, the documents with hypotheses are exactly ``0 .. N-1``. Anything else is a :class:`~deep_pyramidion.plumbing.errors.DataError` saying what is wrong and
where (``FILE:LINE``); a set of documents other than the expected one is a
:class:`~deep_pyramidion.plumbing.errors.MismatchError`.

Command line (what ``scripts/generate.sh`` runs after fairseq-generate; eval/cli.py)::

    pyramidion-check-output FILE [--expected N]
    python -m deep_pyramidion.eval.generate_output --check FILE [--expected N]
"""

import logging
import re
import sys
from dataclasses import dataclass, field
from typing import Dict, Iterable, List, Optional, Sequence

from deep_pyramidion.plumbing.errors import DataError, MismatchError
from deep_pyramidion.plumbing.lines import iter_document_lines

from .rouge import detokenize_pieces

logger = logging.getLogger(__name__)

_GENERATE_LINE = re.compile(r"^([STHDPAIE])-(\d+)(_\d+)?(?:\t(.*))?$")
_CLOSING = re.compile(r"^Generate (\S+) with beam=(\d+): ")
_TRANSLATED = re.compile(r"\bTranslated ([\d,]{1,20}) sentences \(")
#: longest sample id accepted: fairseq's ids are line numbers of a split
MAX_ID_DIGITS = 15
_NUMBER = re.compile(r"^[-+]?(\d+(\.\d*)?|\.\d+)([eE][-+]?\d+)?$|^[-+]?(inf|nan)$")


def _is_number(text: str) -> bool:
    return bool(_NUMBER.match(text))


@dataclass
class GenerateOutput:
    """What a fairseq-generate log holds, by sample id (the 0-based line of the generated split).

    ``hyps`` are the first-best hypotheses, from ``D-`` lines when there are any, else ``H-``
    lines, detokenized when they still hold sentencepiece pieces. ``ref_lines`` maps each reference
    id to its 1-based line in the file, for messages. ``problems`` are what makes the output not
    whole, in file order (``(line, message)``); :meth:`check_complete` raises the first.
    """

    path: str
    hyps: Dict[int, str] = field(default_factory=dict)
    refs: Dict[int, str] = field(default_factory=dict)
    sources: Dict[int, str] = field(default_factory=dict)
    hyp_kind: str = ""
    ref_lines: Dict[int, int] = field(default_factory=dict)
    doc_lines: Dict[int, int] = field(default_factory=dict)  # first line of each document
    nbest: Dict[int, int] = field(default_factory=dict)  # hypotheses per document
    closing_line: Optional[int] = None
    closing_subset: Optional[str] = None
    translated: Optional[int] = None  # N of a "Translated N sentences" log line
    last_line: int = 0
    problems: List[tuple] = field(default_factory=list)

    def problem(self, lineno: Optional[int], message: str) -> None:
        self.problems.append((lineno, message))

    def where(self, lineno: Optional[int]) -> str:
        return f"{self.path}:{lineno}" if lineno else self.path

    def check_complete(self, expected: Optional[int] = None, doc_ids: Optional[Sequence[str]] = None) -> None:
        """Raise :class:`DataError` (what and where) unless the output is one whole run; with
        ``expected``, :class:`MismatchError` unless its documents are exactly ``0 .. expected-1``."""
        self.check_whole(expected)
        if expected is not None:
            check_same_ids(self.nbest, range(expected), f"{self.path} vs the {expected} documents expected", doc_ids,
                           refusing=INCOMPLETE)

    def check_whole(self, expected: Optional[int] = None) -> None:
        """The structural half of :meth:`check_complete`: one run, whole lines, the end of the run
        there. ``expected`` (the number of documents) lets a run without references, which has no
        closing line, count as finished when it holds every document."""
        if self.problems:
            lineno, message = self.problems[0]
            more = f" (and {len(self.problems) - 1} more problems)" if len(self.problems) > 1 else ""
            raise DataError(f"{self.where(lineno)}: {message}{more}")
        if not self.nbest:
            raise DataError(f"{self.path}: no H- or D- lines: not a fairseq-generate output (or run with --quiet)")
        if self.closing_line is None:
            if self.refs:  # fairseq prints the closing line whenever the split has references
                raise DataError(
                    f"{self.path}: no closing line ('Generate SUBSET with beam=N: ...', which fairseq-generate "
                    f"prints when it finishes) after line {self.last_line}: the run was cut off or is still running"
                )
            whole = expected is not None and set(self.nbest) == set(range(expected))
            if self.translated is None and not whole:
                raise DataError(
                    f"{self.path}: no closing line and no 'Translated N sentences' line after line "
                    f"{self.last_line}: cannot tell that the run finished; pass the number of documents"
                )
        if self.translated is not None and self.translated != len(self.nbest):
            raise DataError(
                f"{self.path}: fairseq reports {self.translated} documents translated but the file holds "
                f"{len(self.nbest)}"
            )


def _id(text: str) -> Optional[int]:
    """The sample id, or None when it has more digits than a line number of a split can have
    (``int()`` of a huge digit string costs time and memory set by the input)."""
    return None if len(text) > MAX_ID_DIGITS else int(text)


def read_generate_output(path: str, require_complete: bool = True, expected: Optional[int] = None,
                         doc_ids: Optional[Sequence[str]] = None) -> GenerateOutput:
    """Parse fairseq-generate stdout / ``generate-{subset}.txt`` (module docstring); with
    ``require_complete`` (default) refuse an output that is not whole (:meth:`check_complete`).

    With ``--nbest`` > 1 the first (best) hypothesis per id is kept. Memory: proportional to the
    file (the hypotheses, references and sources it holds).
    """
    gen = _parse(path)
    if require_complete:
        gen.check_complete(expected, doc_ids)
    found_d = gen.hyp_kind == "D"
    logger.info("%s: %d hypotheses (%s- lines), %d references (T- lines)", path, len(gen.hyps),
                "D" if found_d else "H", len(gen.refs))
    return gen


def _parse(path: str) -> GenerateOutput:
    gen = GenerateOutput(path=path)
    raw = {"S": {}, "T": {}, "H": {}, "D": {}}
    current = None  # id of the document whose block is being read
    closed_ids = set()  # documents whose block has ended
    expect = None  # what the current hypothesis needs next: "DP" after H, "P" after D, None
    pending = None  # (kind, id, lineno, score) of the hypothesis line being completed
    any_d = False
    last_text = None
    ended_with_newline = True
    for lineno, text in iter_document_lines(path):
        gen.last_line = lineno
        last_text = text
        if gen.closing_line is None and _CLOSING.match(text):
            if expect:
                gen.problem(pending[2], f"{pending[0]}-{pending[1]} line without its P- line")
                expect = None
            gen.closing_line, gen.closing_subset = lineno, _CLOSING.match(text).group(1)
            continue
        translated = _TRANSLATED.search(text)
        if translated and not text.startswith(("S-", "T-", "H-", "D-", "P-")):
            gen.translated = int(translated.group(1).replace(",", ""))
            continue
        match = _GENERATE_LINE.match(text)
        if not match:
            if _CLOSING.match(text):
                gen.problem(lineno, f"a second closing line (the first at line {gen.closing_line}): "
                                    "the file holds more than one run")
            elif re.match(r"^[STHDP]-", text):
                gen.problem(lineno, f"malformed line {text[:60]!r} (expected KIND-ID<TAB>...)")
            continue
        kind, id_text, suffix, rest = match.group(1), match.group(2), match.group(3), match.group(4)
        sample_id = _id(id_text)
        if sample_id is None:
            gen.problem(lineno, f"sample id of {len(id_text)} digits: not a line number of a split")
            continue
        if gen.closing_line is not None:
            gen.problem(lineno, f"output continues after fairseq's closing line (line {gen.closing_line}): "
                                "the file holds more than one run")
            break
        if kind in "AIE":
            continue  # alignments, steps, iteration history: belong to the hypothesis before
        rest = rest or ""
        if sample_id != current:
            if sample_id in closed_ids:
                gen.problem(lineno, f"document {sample_id} appears a second time (first at line "
                                    f"{gen.doc_lines[sample_id]}): the file holds more than one run")
                break
            if current is not None:
                closed_ids.add(current)
            current = sample_id
            gen.doc_lines[sample_id] = lineno
        if kind in "ST":
            if expect:
                gen.problem(pending[2], f"{pending[0]}-{pending[1]} line without its P- line")
                expect = None
            if sample_id in raw[kind] or gen.nbest.get(sample_id):
                gen.problem(lineno, f"{kind}-{sample_id} line inside the hypotheses of document {sample_id}"
                            if gen.nbest.get(sample_id) else f"a second {kind}-{sample_id} line")
                continue
            raw[kind][sample_id] = rest
            if kind == "T":
                gen.ref_lines[sample_id] = lineno
            continue
        if kind == "P":
            if expect is None or pending[1] != sample_id:
                gen.problem(lineno, f"P-{sample_id} line without an H- line before it")
            elif "D" in expect and any_d:
                gen.problem(pending[2], f"H-{sample_id} line without its D- line")
            fields = rest.split()
            if not fields or not all(_is_number(f) for f in fields):
                gen.problem(lineno, f"P-{sample_id} line is not whole (positional scores expected): {text[:60]!r}")
            expect = None
            continue
        # H or D: score, tab, text (the text may be empty and its tab gone)
        score, _, hypothesis = rest.partition("\t")
        if not _is_number(score):
            gen.problem(lineno, f"{kind}- line without a score: {text[:80]!r}")
            expect = None
            continue
        if kind == "H":
            if expect:
                gen.problem(pending[2], f"{pending[0]}-{pending[1]} line without its P- line")
            gen.nbest[sample_id] = gen.nbest.get(sample_id, 0) + 1
            expect, pending = "DP", ("H", sample_id, lineno, score)
            raw["H"].setdefault(sample_id, hypothesis)
            continue
        # D
        any_d = True
        if expect != "DP" or pending[1] != sample_id:
            gen.problem(lineno, f"D-{sample_id} line without an H- line before it")
        elif pending[3] != score:
            gen.problem(lineno, f"D-{sample_id} line's score {score} is not that of the H- line before it")
        else:
            raw["D"].setdefault(sample_id, hypothesis)
        expect, pending = "P", ("D", sample_id, lineno, score)
    else:
        ended_with_newline = _ends_with_newline(path)
    if expect:
        gen.problem(pending[2], f"{pending[0]}-{pending[1]} line without its P- line (the file is cut off)")
    if not ended_with_newline and last_text is not None:
        gen.problem(gen.last_line, "the last line is cut off (no newline at the end): the output is incomplete")
    if any_d:
        no_d = sorted(set(raw["H"]) - set(raw["D"]))
        if no_d:
            gen.problem(gen.doc_lines.get(no_d[0]), f"document {no_d[0]} has H- but no D- lines while others have them")
    kind = "D" if any_d else "H"
    gen.hyp_kind = kind
    gen.hyps = {i: detokenize_pieces(t) for i, t in sorted(raw[kind].items())}
    gen.refs = {i: detokenize_pieces(t) for i, t in sorted(raw["T"].items())}
    gen.sources = {i: detokenize_pieces(t) for i, t in sorted(raw["S"].items())}
    return gen


def _ends_with_newline(path: str) -> bool:
    with open(path, "rb") as handle:
        handle.seek(0, 2)
        if handle.tell() == 0:
            return True
        handle.seek(-1, 2)
        return handle.read(1) == b"\n"


def describe_ids(ids: Iterable[int], doc_ids: Optional[Sequence[str]], lines: bool = False, limit: int = 30) -> str:
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


INCOMPLETE = ("not every document of the split got a hypothesis (too long for --max-source-positions without "
              "--truncate-source? --skip-invalid-size-inputs-valid-test?)")
REFUSING_ROUGE = "refusing to report ROUGE on a different set of documents than the references"


def check_same_ids(
    hyp_ids: Iterable[int],
    ref_ids: Iterable[int],
    what: str,
    doc_ids: Optional[Sequence[str]] = None,
    lines: bool = False,
    refusing: str = REFUSING_ROUGE,
) -> None:
    """Raise :class:`MismatchError` unless both id sets are equal; the message lists the ids
    present on one side only: 0-based sample ids, or 1-based line numbers when ``lines``, with the
    document ids when ``doc_ids`` is given. ``refusing`` opens the message."""
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
            f"{unit} {describe_ids(missing, doc_ids, lines)}"
        )
    if extra:
        problems.append(f"{len(extra)} hypotheses have no reference: {unit} {describe_ids(extra, doc_ids, lines)}")
    raise MismatchError(f"{refusing} ({what}): " + "; ".join(problems))


def _gaps(ids: Iterable[int], limit: int = 31) -> List[int]:
    """The first ``limit`` integers in ``0 .. max(ids)`` missing from ``ids``, found by walking the
    sorted ids (never ``range(max id)``: the ids come from the input)."""
    gaps: List[int] = []
    expected = 0
    for i in sorted(set(ids)):
        while expected < i and len(gaps) < limit:
            gaps.append(expected)
            expected += 1
        if len(gaps) >= limit:
            break
        expected = i + 1
    return gaps


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
    gaps = _gaps(seen)
    if gaps:
        count = max(seen) + 1 - len(seen)
        shown = describe_ids(gaps[:30], doc_ids) + (f", ... ({count - 30} more)" if count > 30 else "")
        raise MismatchError(
            f"refusing to report ROUGE: {gen.path} has no lines at all for ids {shown} "
            "(skipped by fairseq, e.g. --skip-invalid-size-inputs-valid-test?); pass --ref to score "
            "against the full reference set"
        )
    no_target = sorted(seen - set(gen.refs))
    if no_target:
        raise DataError(f"{gen.path}: no T- line for ids {describe_ids(no_target, doc_ids)}; pass --ref")
    check_same_ids(gen.hyps, seen, f"{gen.path}: H-/D- lines vs T- lines", doc_ids)
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


def check_main(argv: Optional[List[str]] = None) -> int:
    """``python -m deep_pyramidion.eval.generate_output --check FILE``: the command line is
    ``pyramidion-check-output``'s (deep_pyramidion/eval/cli.py), with the file as ``--check``."""
    from .cli import check_main as main

    return main(argv)


if __name__ == "__main__":
    sys.exit(check_main())
