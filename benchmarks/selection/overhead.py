"""What --selection-loss costs: one training step of the same pyramidion with and without it,
timed side by side in one process (benchmarks.common.side_by_side: a load change hits both).

    python -m benchmarks.selection.overhead                       # pyramidion_deep sizes, 8192 tokens
    python -m benchmarks.selection.overhead --length 2048 --repeat 3

The step is the train table's (benchmarks/models.py: train_step: forward, summed token NLL,
backward, AdamW), which adds, for the selection row, the scorers' term weighted 1 per target token
as --criterion label_smoothed_cross_entropy_with_selection adds it. The extra work is the labels
(one comparison of the source with the target per document), one more scorer pass per pooler
on its input, and the pooled labels. Prints the seconds of each and their ratio.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys


def main(argv=None) -> int:
    from benchmarks import models
    from benchmarks.common import machine_info, side_by_side, torch_env

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--length", type=int, default=8192)
    p.add_argument("--out-len", type=int, default=128)
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--json", default=None, metavar="PATH")
    args = p.parse_args(argv)

    env = torch_env("cpu", args.threads)
    sizes = models.FULL_SIZES
    models.FAIRSEQ_FLAGS["pyramidion-selection"] = models.FAIRSEQ_FLAGS["pyramidion"] + [
        "--selection-loss", "1"]
    batch = models.random_batch(1, args.length, sizes["vocab"], args.out_len, env.device)
    steps = {}
    for kind in ("pyramidion", "pyramidion-selection"):
        model, _task, d = models.fairseq_model(kind, args.length, sizes, args.out_len)
        steps[kind] = models.train_step(kind, model, d, batch, sizes["vocab"], env.autocast)
    times = side_by_side(list(steps.values()), env.sync, args.warmup, args.repeat)
    rows = {kind: {"times_s": t, "min_s": min(t), "median_s": statistics.median(t)}
            for kind, t in zip(steps, times)}
    ratio = rows["pyramidion-selection"]["min_s"] / rows["pyramidion"]["min_s"]
    for kind, row in rows.items():
        print(f"{kind:22s} T={args.length}  min {row['min_s']:.3f} s  median {row['median_s']:.3f} s")
    print(f"selection loss / without: {ratio:.3f}x (minima of {args.repeat} side-by-side rounds)")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as out:
            json.dump({"machine": machine_info("cpu"), "length": args.length, "rows": rows,
                       "ratio": ratio}, out, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
