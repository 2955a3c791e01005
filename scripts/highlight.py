#!/usr/bin/env python
"""Show which input tokens the encoder's poolers kept: the paper's "highlighting".

    python scripts/highlight.py --checkpoint runs/aclsum/checkpoint_best.pt --data data-bin/aclsum \\
        --input data/aclsum/test-A.src --line 1 --out highlight/
    python scripts/highlight.py --checkpoint CKPT --data DATA_BIN --text "raw document text" --out DIR

Writes OUT/highlight.html (the document with every token shaded by its weight, one section per
pooling layer, and the most-kept passages listed), OUT/highlight.png (a heat strip per pooling
layer over the token positions) and OUT/weights.json (the numbers). What a weight is:
deep_pyramidion/analysis/highlight.py.
"""
import argparse
import logging
import os
import sys
from typing import List, Optional

from deep_pyramidion.analysis.highlight import HighlightError, highlight

logger = logging.getLogger("highlight")


def read_document(path: str, line: int) -> str:
    count = 0
    with open(path, encoding="utf-8") as stream:
        for count, text in enumerate(stream, start=1):
            if count == line:
                if not text.strip():
                    raise HighlightError(f"{path}:{line}: empty line")
                return text
    raise HighlightError(f"--line {line}: {path} has only {count} lines")


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", required=True, metavar="CKPT", help="fairseq checkpoint (.pt)")
    parser.add_argument("--data", required=True, metavar="DATA_BIN",
                        help="binarized data folder with the model's dictionary")
    parser.add_argument("--sentencepiece-model", metavar="SPM",
                        help="sentencepiece model (default: DATA_BIN/spm.model)")
    parser.add_argument("--no-bpe", action="store_true", help="the text is already in dictionary tokens")
    src = parser.add_mutually_exclusive_group(required=True)
    src.add_argument("--input", metavar="FILE", help="documents, one per line (see --line)")
    src.add_argument("--text", help="the document itself")
    parser.add_argument("--line", type=int, default=1, help="which line of --input (1-based, default 1)")
    parser.add_argument("--max-source-positions", type=int,
                        help="read up to N tokens (default: the checkpoint's)")
    parser.add_argument("--out", required=True, help="output folder")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logger.setLevel(logging.INFO)
    logging.getLogger("deep_pyramidion").setLevel(logging.INFO)
    if args.line < 1:
        parser.error("--line must be >= 1")
    if args.no_bpe and args.sentencepiece_model:
        parser.error("--no-bpe and --sentencepiece-model contradict each other: give one")
    if not os.path.isfile(args.checkpoint):
        parser.error(f"--checkpoint {args.checkpoint}: no such file")
    if args.input is not None and not os.path.isfile(args.input):
        parser.error(f"--input {args.input}: no such file")
    if args.max_source_positions is not None and args.max_source_positions < 2:
        parser.error("--max-source-positions must be >= 2")
    try:
        if args.input is not None:
            text = read_document(args.input, args.line)
            name = f"{os.path.basename(args.input)}:{args.line}"
        else:
            text, name = args.text, "--text"
        from deep_pyramidion.hub import from_pretrained

        overrides = {"cpu": True}
        if args.max_source_positions:
            overrides["max_source_positions"] = args.max_source_positions
        ckpt = os.path.abspath(args.checkpoint)
        hub = from_pretrained(os.path.dirname(ckpt), checkpoint_file=os.path.basename(ckpt),
                              data_name_or_path=os.path.abspath(args.data),
                              bpe=None if args.no_bpe else "sentencepiece",
                              sentencepiece_model=args.sentencepiece_model, **overrides)
        result = highlight(hub, text, args.out, name)
    except (HighlightError, FileNotFoundError, ValueError) as err:
        logger.error("%s", err)
        return 1
    for info in result["layers"]:
        logger.info("layer %d: %d -> %d tokens, weights sum to %.2f", info["layer"], info["n_in"],
                    info["n_out"], info["weight_sum"])
    logger.info("wrote %s and %s", result["html"], result["png"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
