#!/usr/bin/env python
"""One document per line in, one summary per line out, with a pyramidion exported by
pyramidion-export-hf (or written by scripts/hf_finetune.py): transformers'
pipeline("summarization", model=OUT_DIR, trust_remote_code=True), i.e. the folder's own pipeline
(pipeline_pyramidion.py: generate() with the export's generation config, decoded as
pyramidion-summarize prints). Needs only torch and transformers >= 5 (+ sentencepiece for a
from-scratch model).

    python scripts/hf_summarize.py --model hf-aclsum data/aclsum/test-A.src > hyps.txt
    python scripts/hf_summarize.py --model hf-aclsum --beam 2 --sentence-separator " " - < docs.txt

Output line i is the summary of input line i; an empty input line is an error naming it (exit 1),
checked before the model loads, and so is a folder without the pipeline (an export older than it:
export again). --batch-size 1 (the default) gives every document the encoding fairseq gives it
alone; larger batches pad on the left, as fairseq-generate's batches do.
"""
import argparse
import json
import os
import sys


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="scripts/hf_summarize.py", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("input", nargs="?", default="-", metavar="FILE|-")
    parser.add_argument("--model", required=True, metavar="OUT_DIR",
                        help="a folder written by pyramidion-export-hf")
    parser.add_argument("--batch-size", type=int, default=1)
    parser.add_argument("--beam", type=int, help="num_beams (default: the export's)")
    parser.add_argument("--max-new-tokens", type=int, help="default: the export's")
    parser.add_argument("--sentence-separator", default=" <q> ",
                        help='joins the sentences of a summary (default " <q> ", as '
                             'pyramidion-summarize)')
    parser.add_argument("--cuda", action="store_true")
    parser.add_argument("--json", help="also write the settings used here")
    args = parser.parse_args(argv)
    if args.batch_size < 1:
        parser.error("--batch-size must be >= 1")

    stream = sys.stdin.buffer if args.input == "-" else open(args.input, "rb")
    name = "<stdin>" if args.input == "-" else args.input
    with stream:
        raw = stream.read()
    documents = []
    for lineno, line in enumerate(raw.split(b"\n")[:-1] if raw.endswith(b"\n")
                                  else raw.split(b"\n"), 1):
        try:
            text = line.decode("utf-8")
        except UnicodeDecodeError as err:
            print(f"error: {name}:{lineno}: not UTF-8 (byte {err.start})", file=sys.stderr)
            return 1
        if not text.strip():
            print(f"error: {name}:{lineno}: empty line; every line must hold one document",
                  file=sys.stderr)
            return 1
        documents.append(text)

    config_path = os.path.join(args.model, "config.json")
    try:
        with open(config_path, encoding="utf-8") as handle:
            pipelines = json.load(handle).get("custom_pipelines") or {}
    except (OSError, ValueError) as err:
        print(f"error: --model {args.model}: no readable config.json ({err})", file=sys.stderr)
        return 1
    if "summarization" not in pipelines:
        print(f"error: {config_path}: names no summarization pipeline (custom_pipelines); export "
              "the model again with this version of pyramidion-export-hf", file=sys.stderr)
        return 1

    from transformers import pipeline

    summarizer = pipeline("summarization", model=args.model, trust_remote_code=True,
                          device="cuda" if args.cuda else "cpu")
    settings = {k: v for k, v in (("num_beams", args.beam),
                                  ("max_new_tokens", args.max_new_tokens)) if v is not None}
    step = args.batch_size * 8
    for start in range(0, len(documents), step):
        results = summarizer(documents[start:start + step], batch_size=args.batch_size,
                             sentence_separator=args.sentence_separator, **settings)
        for result in results:
            sys.stdout.write(result["summary_text"] + "\n")
        sys.stdout.flush()
    if args.json:
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump({"model": args.model, "documents": len(documents), **settings,
                       "generation_config": summarizer.model.generation_config.to_dict()},
                      handle, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
