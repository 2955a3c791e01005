#!/usr/bin/env python
"""Sentencepiece + fairseq-preprocess: text splits -> binarized data named train / dev-0 / test-A.

    python scripts/preprocess.py --data data/aclsum --out data-bin/aclsum --vocab-size 32000
    python scripts/preprocess.py --data data/arxiv --out data-bin/arxiv --spm-model spm.model --workers 8
    python scripts/preprocess.py --check data-bin/aclsum [--spm-model other.model]

DATA holds {split}.src / {split}.tgt (one document per line, as the prepare_* scripts write them).
OUT gets {split}.src-tgt.{src,tgt}.{bin,idx}, dict.src.txt = dict.tgt.txt, spm.model (pass it as
--sentencepiece-model), {split}.ids and preprocess.json. --check only verifies that a sentencepiece
model matches a folder's dictionary.
"""
import argparse
import logging
import os
import sys

from deep_pyramidion.data.binarize import SPLITS, check_spm_dictionary, preprocess
from deep_pyramidion.data.io import DataError


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", help="folder with the text splits")
    parser.add_argument("--out", help="output folder for the binarized data")
    parser.add_argument("--vocab-size", type=int, default=32000,
                        help="sentencepiece vocabulary size (default 32000, as in the paper); a corpus too "
                             "small for it gets a smaller model and a warning")
    parser.add_argument("--spm-model", help="reuse this sentencepiece model instead of training one")
    parser.add_argument("--workers", type=int, default=1, help="processes for encoding and fairseq-preprocess")
    parser.add_argument("--splits", default=",".join(SPLITS),
                        help=f"comma-separated splits to binarize (default {','.join(SPLITS)})")
    parser.add_argument("--model-type", default="unigram", choices=["unigram", "bpe"],
                        help="sentencepiece model type (default unigram)")
    parser.add_argument("--character-coverage", type=float, default=0.9995)
    parser.add_argument("--spm-input-sentences", type=int, default=2_000_000,
                        help="chunks of up to 100 words sampled to train sentencepiece (default 2000000)")
    parser.add_argument("--seed", type=int, default=1, help="seed of sentencepiece's sampling")
    parser.add_argument("--keep-pieces", action="store_true", help="keep the encoded text in OUT/.pieces")
    parser.add_argument("--overwrite", action="store_true", help="replace preprocessed data already in OUT")
    parser.add_argument("--check", metavar="BIN_DIR",
                        help="only check that BIN_DIR/dict.src.txt matches --spm-model (default BIN_DIR/spm.model)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")

    if args.check:
        model = args.spm_model or os.path.join(args.check, "spm.model")
        try:
            report = check_spm_dictionary(model, os.path.join(args.check, "dict.src.txt"))
        except DataError as err:
            print(f"error: {err}", file=sys.stderr)
            return 1
        print(f"ok: {model} matches {report.dict_path} ({report.n_pieces} pieces, "
              f"{len(report.missing)} not in the dictionary, {len(report.unknown)} entries not in the model)")
        return 0

    if not args.data or not args.out:
        parser.error("--data and --out are required (or use --check BIN_DIR)")
    splits = [s.strip() for s in args.splits.split(",") if s.strip()]
    if not splits or len(set(splits)) != len(splits):
        parser.error("--splits: give distinct split names")
    if args.workers < 1:
        parser.error("--workers must be >= 1")
    if args.spm_model is None and args.vocab_size < 8:
        parser.error("--vocab-size must be at least 8")
    try:
        result = preprocess(
            args.data,
            args.out,
            vocab_size=args.vocab_size,
            spm_model=args.spm_model,
            workers=args.workers,
            splits=splits,
            model_type=args.model_type,
            character_coverage=args.character_coverage,
            input_sentence_size=args.spm_input_sentences,
            keep_pieces=args.keep_pieces,
            overwrite=args.overwrite,
            seed=args.seed,
        )
    except DataError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    counts = ", ".join(f"{split} {n}" for split, n in result.counts.items())
    print(f"wrote {result.out_dir}: {counts} documents; dictionary {result.dict_size} entries "
          f"({result.dictionary}); sentencepiece model {result.spm_model}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
