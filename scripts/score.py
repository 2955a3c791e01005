#!/usr/bin/env python
"""ROUGE-1/2/L/Lsum F1 (rouge-score, stemmer on) with bootstrap confidence intervals.

    python scripts/score.py --hyp hyps.txt --ref data/aclsum/test-A.tgt
    python scripts/score.py --generate-output generate_results/generate-test-A.txt \\
        --ref data/aclsum/test-A.tgt --lead-source data/aclsum/test-A.src --json rouge.json

Documents are one per line; sentences are separated by " <q> " (ROUGE-Lsum scores them one per
line). From a fairseq-generate log, D- lines are preferred over H- lines and sentencepiece pieces
are detokenized. Exit status: 0 scored, 1 bad input, 2 usage, 3 hypotheses and references are not
the same documents (the missing ids are listed; nothing is scored).
"""
import argparse
import json
import logging
import os
import sys

from deep_pyramidion.data.io import DataError
from deep_pyramidion.data.rouge import MismatchError, evaluate_files


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
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
                        help="bootstrap resamples for the confidence intervals (0: none; default 1000)")
    parser.add_argument("--seed", type=int, default=1, help="bootstrap seed (default 1)")
    parser.add_argument("--confidence", type=float, default=0.95, help="interval coverage (default 0.95)")
    parser.add_argument("--name", default="model", help="row label of the hypotheses (default: model)")
    parser.add_argument("--json", metavar="PATH", help="also write the scores as JSON")
    parser.add_argument("--workers", type=int, default=1, help="processes for ROUGE (default 1)")
    args = parser.parse_args(argv)
    if bool(args.generate_output) == bool(args.hyp):
        parser.error("give either --generate-output FILE or --hyp FILE --ref FILE")
    if args.hyp and not args.ref:
        parser.error("--hyp needs --ref")
    if args.workers < 1:
        parser.error("--workers must be >= 1")
    if args.bootstrap < 0:
        parser.error("--bootstrap must be >= 0")
    if not 0.0 < args.confidence < 1.0:
        parser.error("--confidence must be between 0 and 1")
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")

    ids = args.ids
    if ids is None and args.ref and args.ref.endswith(".tgt") and os.path.isfile(args.ref[:-4] + ".ids"):
        ids = args.ref[:-4] + ".ids"
        logging.getLogger("score").info("document ids from %s", ids)
    try:
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
    except MismatchError as err:
        print(f"error: {err}", file=sys.stderr)
        return 3
    except DataError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(report.table())
    if args.json:
        with open(args.json, "w", encoding="utf-8") as out:
            json.dump(report.as_dict(), out, indent=1)
            out.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
