"""The command lines of the evaluation package (deep_pyramidion/commands.py lists them):
``pyramidion-score`` (:func:`score_main`, also ``scripts/score.py``) and ``pyramidion-check-output``
(:func:`check_output_main`, also ``python -m deep_pyramidion.eval.generate_output --check FILE``)."""

import argparse
import json
import logging
import os
from typing import List, Optional

from deep_pyramidion.plumbing.cli import EXIT_OK, exit_codes_help, run_cli, setup_logging
from deep_pyramidion.plumbing.errors import MismatchError
from deep_pyramidion.plumbing.files import check_output_file, write_file_atomic

from .evaluate import evaluate_files
from .rouge import MAX_BOOTSTRAP

logger = logging.getLogger("score")

SCORE_DOC = """ROUGE-1/2/L/Lsum F1 (rouge-score, stemmer on) with bootstrap confidence intervals.

    pyramidion-score --hyp hyps.txt --ref data/aclsum/test-A.tgt
    pyramidion-score --generate-output generate_results/generate-test-A.txt \\
        --ref data/aclsum/test-A.tgt --lead-source data/aclsum/test-A.src --json rouge.json

(From a checkout, python scripts/score.py takes the same flags.)

Documents are one per line (a line ends at \\n only). Sentences are separated by " <q> "
(ROUGE-Lsum scores them one per line); a side without any <q> marker (plain summaries) is split
into sentences by the project's splitter (deep_pyramidion/data/sentences.py) first, and the header
says which. From a fairseq-generate log, D- lines are preferred over H- lines and sentencepiece
pieces are detokenized; the log must be one whole run (cut-off files and files holding two runs are
refused, naming the line).
"""


def build_parser(prog: str = "pyramidion-score") -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog, description=SCORE_DOC, formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=exit_codes_help("3 hypotheses and references are not the same documents (the missing ids "
                               "are listed; nothing is scored); "))
    parser.add_argument("--generate-output", metavar="FILE", help="fairseq-generate stdout or generate-{subset}.txt")
    parser.add_argument("--hyp", metavar="FILE", help="hypotheses, one document per line")
    parser.add_argument("--ref", metavar="FILE",
                        help="references, one document per line (required with --hyp; with --generate-output "
                             "it replaces the T- lines and lets a dropped tail of documents be detected)")
    parser.add_argument("--ids", metavar="FILE",
                        help="document ids, one per reference line, used in messages "
                             "(default: the .ids file next to a --ref ending in .tgt, when there is one)")
    parser.add_argument("--lead-source", metavar="FILE",
                        help="source documents, one per reference: add a Lead baseline row")
    parser.add_argument("--bootstrap", type=int, default=1000, metavar="N",
                        help=f"bootstrap resamples for the confidence intervals (0: none; at most "
                             f"{MAX_BOOTSTRAP}; default 1000)")
    parser.add_argument("--seed", type=int, default=1, help="bootstrap seed (>= 0; default 1)")
    parser.add_argument("--confidence", type=float, default=0.95, help="interval coverage (default 0.95)")
    parser.add_argument("--name", default="model", help="row label of the hypotheses (default: model)")
    parser.add_argument("--json", metavar="PATH",
                        help="also write the scores as JSON (replaced only when scoring succeeded)")
    parser.add_argument("--workers", type=int, default=1,
                        help="processes for ROUGE (default 1; at most the CPUs are used)")
    return parser


def score_main(argv: Optional[List[str]] = None, prog: str = "pyramidion-score") -> int:
    """``pyramidion-score`` (``scripts/score.py`` passes its own ``prog``): returns the exit status
    (0 scored, 1 bad input, 2 usage, 3 mismatch)."""
    return run_cli(lambda args: _score_main(args, prog), argv, mismatch=(MismatchError,))


def _score_main(argv: Optional[List[str]], prog: str = "pyramidion-score") -> int:
    parser = build_parser(prog)
    args = parser.parse_args(argv)
    if bool(args.generate_output) == bool(args.hyp):
        parser.error("give either --generate-output FILE or --hyp FILE --ref FILE")
    if args.hyp and not args.ref:
        parser.error("--hyp needs --ref")
    if args.workers < 1:
        parser.error("--workers must be >= 1")
    if args.bootstrap < 0:
        parser.error("--bootstrap must be >= 0")
    if args.bootstrap > MAX_BOOTSTRAP:
        parser.error(f"--bootstrap {args.bootstrap}: at most {MAX_BOOTSTRAP} resamples (the interval does not "
                     "change beyond its rounding; time and memory would follow the number)")
    if args.seed < 0:
        parser.error("--seed must be >= 0")
    if not 0.0 < args.confidence < 1.0:
        parser.error("--confidence must be between 0 and 1")
    if not args.name.strip() or "\n" in args.name:
        parser.error("--name must be a non-empty label on one line")
    setup_logging(logging.INFO)

    ids = args.ids
    if ids is None and args.ref and args.ref.endswith(".tgt") and os.path.isfile(args.ref[:-4] + ".ids"):
        ids = args.ref[:-4] + ".ids"
        logger.info("document ids from %s", ids)
    inputs = [("--generate-output", args.generate_output), ("--hyp", args.hyp), ("--ref", args.ref),
              ("--ids", ids), ("--lead-source", args.lead_source)]
    if args.json:
        check_output_file("--json", args.json, inputs)  # before any work
    report = evaluate_files(
        hyp=args.hyp,
        ref=args.ref,
        generate_output=args.generate_output,
        ids=ids,
        lead_source=args.lead_source,
        bootstrap=args.bootstrap,
        seed=args.seed,
        confidence=args.confidence,
        name=args.name,
        workers=args.workers,
    )
    if args.json:
        write_file_atomic(args.json, json.dumps(report.as_dict(), indent=1) + "\n")
    print(report.table())
    return EXIT_OK


# --------------------------------------------------------------------------- check-output

CHECK_DOC = """Check that a fairseq-generate output is complete: one whole run, every document once.

    pyramidion-check-output RESULTS/generate-test-A.txt --expected 100

(python -m deep_pyramidion.eval.generate_output --check FILE takes the file as --check.)

Exit status: 0 complete; 1 not whole (cut off, more than one run, a damaged H-/D-/P- line: the
message says what and FILE:LINE) or unreadable; 2 usage; 3 whole, but its documents are not
0 .. N-1 of --expected N (the missing or extra ids are listed); 130 interrupted; 141 stdout closed
early (| head). Reads only.
"""


def check_output_main(argv: Optional[List[str]] = None) -> int:
    """``pyramidion-check-output FILE [--expected N] [--ids FILE]``: returns the exit status."""
    return run_cli(lambda args: _check_output(args, "pyramidion-check-output", positional=True), argv,
                   mismatch=(MismatchError,))


def check_main(argv: Optional[List[str]] = None) -> int:
    """``python -m deep_pyramidion.eval.generate_output --check FILE [--expected N] [--ids FILE]``
    (what scripts/generate.sh runs): returns the exit status."""
    return run_cli(lambda args: _check_output(args, "python -m deep_pyramidion.eval.generate_output",
                                              positional=False), argv, mismatch=(MismatchError,))


def _check_output(argv: Optional[List[str]], prog: str, positional: bool) -> int:
    from deep_pyramidion.plumbing.lines import read_document_lines

    from .generate_output import read_generate_output

    parser = argparse.ArgumentParser(prog=prog, description=CHECK_DOC,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    what = "fairseq-generate stdout or generate-SUBSET.txt"
    if positional:
        parser.add_argument("check", metavar="FILE", help=what)
    else:
        parser.add_argument("--check", required=True, metavar="FILE", help=what)
    parser.add_argument("--expected", type=int, metavar="N", help="the number of documents of the split")
    parser.add_argument("--ids", metavar="FILE", help="document ids, one per line (named in messages)")
    args = parser.parse_args(argv)
    if args.expected is not None and args.expected < 0:
        parser.error("--expected must be >= 0")
    setup_logging(logging.WARNING)
    doc_ids = read_document_lines(args.ids) if args.ids else None
    gen = read_generate_output(args.check, expected=args.expected, doc_ids=doc_ids)
    nbest = sorted(set(gen.nbest.values()))
    per_doc = str(nbest[0]) if len(nbest) == 1 else f"{nbest[0]}-{nbest[-1]}"
    print(f"ok: {args.check}: {len(gen.nbest)} documents, {per_doc} hypotheses each ({gen.hyp_kind}- lines)")
    return EXIT_OK
