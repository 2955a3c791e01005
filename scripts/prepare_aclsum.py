#!/usr/bin/env python
"""Write the ACLSum papers shipped by the `aclsum` package as train / dev-0 / test-A text splits.

    python scripts/prepare_aclsum.py --out data/aclsum [--max-source-words N] [--strict]

Writes {split}.src (paper body), {split}.tgt (abstract, sentences joined by " <q> "), {split}.ids,
prepare.json and, when documents were skipped, skipped.tsv. No network access.
"""
import argparse
import logging
import sys

from deep_pyramidion.data.aclsum import aclsum_data_dir, prepare_aclsum
from deep_pyramidion.data.io import DataError


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--data-dir", help="aclsum dataset folder (default: the installed package's)")
    parser.add_argument("--max-source-words", type=int, default=None,
                        help="cut each body to its first N words (default: keep all; the model truncates)")
    parser.add_argument("--strict", action="store_true", help="fail on the first bad document instead of skipping it")
    args = parser.parse_args(argv)
    if args.max_source_words is not None and args.max_source_words <= 0:
        parser.error("--max-source-words must be a positive integer")
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        data_dir = args.data_dir or aclsum_data_dir()
        result = prepare_aclsum(args.out, data_dir, args.max_source_words, args.strict)
        result.write_manifest(args.out, source=f"aclsum ({data_dir})")
    except DataError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(result.summary())
    return 0


if __name__ == "__main__":
    sys.exit(main())
