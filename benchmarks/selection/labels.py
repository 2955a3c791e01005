"""How many source tokens the selection loss calls needed, on a binarized data set, against how
many the schedule keeps: a check to run before training with ``--selection-loss 1``.

    python -m benchmarks.selection.labels demo/data-bin/aclsum --max-source-positions 2048 \\
        --enc-layers-and-token-width "{0: 512, 1: 128}"

The labels are the ones training uses (``PyramidionModel.selection_labels``: a source token is
needed when its id occurs in the document's target; pad, eos, bos and unk never are). Where the
needed tokens are a few places of the input they fit in what the pyramid keeps, and the loss
teaches the scorer exactly that (the spans task at 512 tokens: 1.7% needed, 25% then 6% kept); where
they are a large part of it, as on summarization with a small sentencepiece vocabulary, the scorer
is taught to keep whatever is common, and the kept fractions printed beside say how far apart the
two are.
"""
from __future__ import annotations

import argparse
import ast
import logging
import os
import sys


def label_density(data_bin: str, subset: str, max_source: int, max_docs: int = 0) -> dict:
    """{"documents", "source_tokens", "needed": fraction of real source tokens labelled needed,
    "covered": mean fraction of a target's real tokens whose id occurs in its (cut) source}."""
    import torch
    from fairseq.data import Dictionary, data_utils

    from deep_pyramidion.fairseq_plugin.model import never_needed_ids, target_to_source_ids
    from deep_pyramidion.modules.poolers.selection import selection_labels

    src_dict = Dictionary.load(os.path.join(data_bin, "dict.src.txt"))
    tgt_dict = Dictionary.load(os.path.join(data_bin, "dict.tgt.txt"))
    src, tgt = (data_utils.load_indexed_dataset(os.path.join(data_bin, f"{subset}.src-tgt.{side}"),
                                                dictionary, "mmap")
                for side, dictionary in (("src", src_dict), ("tgt", tgt_dict)))
    if src is None or tgt is None:
        raise SystemExit(f"error: {data_bin}: no {subset}.src-tgt.src/.tgt (fairseq-preprocess output)")
    # the model's own rule (PyramidionModel.selection_labels): target ids as source ids, and
    # the ids that are never needed
    to_source = target_to_source_ids(src_dict, tgt_dict)
    specials = never_needed_ids(src_dict)
    special_ids = torch.tensor(sorted(specials))
    needed = tokens = 0
    covered = []
    count = len(src) if not max_docs else min(max_docs, len(src))
    for i in range(count):
        source = src[i][:max_source]
        target = to_source[tgt[i]]
        labels = selection_labels(source[None], target[None], specials)[0]
        real = ~torch.isin(source, special_ids)
        needed += int(labels[real].sum())
        tokens += int(real.sum())
        target_real = target[~torch.isin(target, special_ids)]
        covered.append(int(torch.isin(target_real, source).sum()) / max(len(target_real), 1))
    return {"documents": count, "source_tokens": tokens, "needed": needed / max(tokens, 1),
            "covered": sum(covered) / max(len(covered), 1)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.selection.labels",
                                     description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("data_bin", help="a fairseq-preprocess folder (dict.src.txt, SUBSET.src-tgt.*)")
    parser.add_argument("--subset", default="train")
    parser.add_argument("--max-source-positions", type=int, required=True,
                        help="source tokens the model reads (longer documents are cut, as --truncate-source does)")
    parser.add_argument("--enc-layers-and-token-width", default=None,
                        help='the schedule, e.g. "{0: 512, 1: 128}": prints the fraction each layer keeps')
    parser.add_argument("--max-docs", type=int, default=0, help="the first N documents only (0: all)")
    args = parser.parse_args(argv)
    if not os.path.isdir(args.data_bin):
        parser.error(f"data_bin: {args.data_bin} is not a folder")
    logging.basicConfig(level=logging.WARNING)
    stats = label_density(args.data_bin, args.subset, args.max_source_positions, args.max_docs)
    print(f"{args.data_bin} {args.subset}: {stats['documents']} documents, "
          f"{stats['source_tokens']} source tokens (at most {args.max_source_positions} each)")
    print(f"  labelled needed (id occurs in the target): {100 * stats['needed']:.1f}% of source tokens")
    print(f"  target tokens whose id occurs in the source: {100 * stats['covered']:.1f}%")
    if args.enc_layers_and_token_width:
        try:
            schedule = ast.literal_eval(args.enc_layers_and_token_width)
            widths = sorted(schedule.items())
        except (ValueError, SyntaxError, AttributeError):
            parser.error("--enc-layers-and-token-width: expected a dict such as \"{0: 512, 1: 128}\"")
        for layer, width in widths:
            print(f"  kept after layer {layer}: {width} = "
                  f"{100 * width / args.max_source_positions:.1f}% of {args.max_source_positions}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
