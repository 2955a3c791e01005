#!/usr/bin/env python
"""Convert the arXiv / PubMed summarization sets (Cohan et al., 2018) to train / dev-0 / test-A.

From the original release (a folder with train.txt, val.txt, test.txt, or those files):
    python scripts/prepare_arxiv_pubmed.py --input arxiv-dataset --out data/arxiv
From the Hugging Face copy (needs `pip install datasets` and network access):
    python scripts/prepare_arxiv_pubmed.py --hf scientific_papers --config arxiv --out data/arxiv

Writes {split}.src (article), {split}.tgt (abstract sentences joined by " <q> "), {split}.ids,
prepare.json and, when documents were skipped, skipped.tsv.
"""
import argparse
import logging
import sys

from deep_pyramidion.data.arxiv_pubmed import SPLIT_NAMES, prepare_arxiv_pubmed, prepare_hf
from deep_pyramidion.data.io import DataError


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--input", nargs="+", metavar="DIR_OR_FILES",
                        help="folder with train/val/test .txt|.jsonl, or the split files themselves")
    source.add_argument("--hf", metavar="NAME", help="Hugging Face dataset name, e.g. scientific_papers")
    parser.add_argument("--config", help="Hugging Face config (arxiv or pubmed); with --hf")
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--splits", default="train,val,test",
                        help="comma-separated original splits to convert (default: train,val,test)")
    parser.add_argument("--max-source-words", type=int, default=None,
                        help="cut each article to its first N words (default: keep all)")
    parser.add_argument("--strict", action="store_true", help="fail on the first bad document instead of skipping it")
    args = parser.parse_args(argv)
    splits = [s.strip() for s in args.splits.split(",") if s.strip()]
    unknown = [s for s in splits if s not in SPLIT_NAMES]
    if unknown or not splits:
        parser.error(f"--splits: unknown split(s) {unknown}; choose from {', '.join(SPLIT_NAMES)}")
    if args.max_source_words is not None and args.max_source_words <= 0:
        parser.error("--max-source-words must be a positive integer")
    if args.hf and not args.config:
        parser.error("--hf needs --config (arxiv or pubmed)")
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        if args.hf:
            result = prepare_hf(args.hf, args.config, args.out, args.max_source_words, args.strict, splits)
            origin = f"{args.hf}/{args.config} (Hugging Face datasets)"
        else:
            result = prepare_arxiv_pubmed(args.input, args.out, args.max_source_words, args.strict, splits)
            origin = ", ".join(args.input)
        result.write_manifest(args.out, source=origin)
    except DataError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(result.summary())
    return 0


if __name__ == "__main__":
    sys.exit(main())
