"""The command line of ``scripts/score.py``: :func:`score_main`."""

import argparse
import json
import logging
import os
from typing import List, Optional

from deep_pyramidion.data.cli_common import EXIT_OK, exit_codes_help, run_cli
from deep_pyramidion.data.output import check_output_file, write_file_atomic

from .errors import MismatchError
from .evaluate import evaluate_files
from .rouge import MAX_BOOTSTRAP

logger = logging.getLogger("score")

SCORE_DOC = """ROUGE-1/2/L/Lsum F1 (rouge-score, stemmer on) with bootstrap confidence intervals.

    python scripts/score.py --hyp hyps.txt --ref data/aclsum/test-A.tgt
    python scripts/score.py --generate-output generate_results/generate-test-A.txt \\
        --ref data/aclsum/test-A.tgt --lead-source data/aclsum/test-A.src --json rouge.json

Documents are one per line (a line ends at \\n only). Sentences are separated by " <q> "
(ROUGE-Lsum scores them one per line); a side without any <q> marker (plain summaries) is split
into sentences by the project's splitter (deep_pyramidion/data/sentences.py) first, and the header
says which. From a fairseq-generate log, D- lines are preferred over H- lines and sentencepiece
pieces are detokenized; the log must be one whole run (cut-off files and files holding two runs are
refused, naming the line).
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="score.py", description=SCORE_DOC, formatter_class=argparse.RawDescriptionHelpFormatter,
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


def score_main(argv: Optional[List[str]] = None) -> int:
    """``scripts/score.py``: returns the exit status (0 scored, 1 bad input, 2 usage, 3 mismatch)."""
    return run_cli(_score_main, argv, mismatch=(MismatchError,))


def _score_main(argv: Optional[List[str]]) -> int:
    parser = build_parser()
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
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")

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
