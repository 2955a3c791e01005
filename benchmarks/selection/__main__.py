"""Which pooling keeps what matters: every option trained on the same selection task, ranked.

    python -m benchmarks.selection --setting quick            # 31 min on 2 CPU cores (measured)
    python -m benchmarks.selection --setting full             # hours: lengths, compressions
    python -m benchmarks.selection --task sentences --length 2048 --compression 8 16 \\
        --options topk topk-st avg none --seeds 1 2 3 --updates 1500

For every (length, compression) the task's text is written once (benchmarks/selection/tasks.py)
and binarized once; then every option x seed trains through ``fairseq-train`` for the same number
of updates (a small d=64, 2+2-layer pyramidion, runs.MODEL_FLAGS; only the pooling differs),
generates the unseen test documents greedily with ``fairseq-generate`` and is scored: exact recall
of the needed spans / sentences, ROUGE-1/2/L against the target, training and generation seconds.
Rows are appended to OUT/results.jsonl as they finish (a second run with the same OUT skips the
rows it has), then OUT/table.md (mean and standard deviation over seeds) and OUT/quality.png
(recall against compression, one line per option) are written.

Options: ``none`` is the unpooled blockwise model (it has no schedule, so it trains once per
seed and its row stands in the table of every compression, a dashed line in the plot); the others
are ``--encoder-pooling NAME``;
``topk-st`` is the trainable top-k with ``--topk-straight-through 1``, ``topk-normalized`` with
``--topk-normalize-scores 1``, ``topk-st-normalized`` with both, ``topk-noflip`` the paper's
top-k pairing the best with the middle instead of the worst (``--flip-right 0``); ``-warmup``
adds ``--topk-base-warmup 500``, ``topk-gain0`` is ``--topk-scorer-gain 0``, and ``-selection``
adds ``--selection-loss 1`` with its criterion (the scorers also learn from the target). A preset
runs the unpooled model, every pooling option and ``topk-selection``; name the others with
``--options``.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import asdict
from typing import Dict, List

from benchmarks.selection.report import UNPOOLED, row_key, run_key, write_report
from benchmarks.selection.runs import Run, binarize, train_and_score
from benchmarks.selection.tasks import SENTENCES_BUDGET, TASKS, TaskSpec, write_task
from deep_pyramidion.config import POOLINGS

logger = logging.getLogger("benchmarks.selection")

# row name -> fairseq flags (the schedule is added per compression)
OPTIONS: Dict[str, List[str]] = {"none": ["--encoder-pooling", "none"]}
OPTIONS.update({name: ["--encoder-pooling", name] for name in POOLINGS})
OPTIONS["topk-st"] = ["--encoder-pooling", "topk", "--topk-straight-through", "1"]
OPTIONS["topk-normalized"] = ["--encoder-pooling", "topk", "--topk-normalize-scores", "1"]
OPTIONS["topk-st-normalized"] = OPTIONS["topk-st"] + ["--topk-normalize-scores", "1"]
OPTIONS["topk-noflip"] = ["--encoder-pooling", "topk", "--flip-right", "0"]
# the base grows from 1 to 20 over the first half of the quick setting's updates
OPTIONS["topk-warmup"] = ["--encoder-pooling", "topk", "--topk-base-warmup", "500"]
OPTIONS["topk-st-warmup"] = OPTIONS["topk-st"] + ["--topk-base-warmup", "500"]
OPTIONS["topk-normalized-warmup"] = OPTIONS["topk-normalized"] + ["--topk-base-warmup", "500"]
OPTIONS["topk-gain0"] = ["--encoder-pooling", "topk", "--topk-scorer-gain", "0"]
# the scorers also learn from the target which tokens it uses (modules/poolers/selection.py)
SELECTION = ["--selection-loss", "1", "--criterion", "label_smoothed_cross_entropy_with_selection"]
OPTIONS["topk-selection"] = ["--encoder-pooling", "topk"] + SELECTION
OPTIONS["hard-topk-selection"] = ["--encoder-pooling", "hard-topk"] + SELECTION
OPTIONS["topk-st-selection"] = OPTIONS["topk-st"] + SELECTION

# the rows a preset runs: the unpooled model, every --encoder-pooling option, and the top-k with
# the selection loss (the variants above only when named with --options)
DEFAULT_OPTIONS = ["none", *POOLINGS, "topk-selection"]

SETTINGS = {
    # 10 rows x 3 seeds, one length and compression: 30.8 minutes end to end on 2 quiet cores
    # (BENCHMARKS.md); at 850 updates the rows rank as they do at 1000, which took ~35 minutes
    "quick": dict(task="spans", lengths=[512], compressions=[16], seeds=[1, 2, 3], spans=4,
                  span_length=2, updates=850, train_docs=2000, options=DEFAULT_OPTIONS),
    # compressions 8x to 64x at 2048 tokens: hours
    "full": dict(task="spans", lengths=[2048], compressions=[8, 16, 32, 64], seeds=[1, 2, 3],
                 spans=8, span_length=3, updates=3000, train_docs=4000, options=DEFAULT_OPTIONS),
}


def schedule(length: int, compression: int) -> str:
    """Two pooling steps: 4x the final width after layer 0 (at most half the input), the final
    width ``length / compression`` after layer 1."""
    final = max(1, length // compression)
    return "{0: %d, 1: %d}" % (min(4 * final, max(final, length // 2)), final)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.selection", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--setting", choices=sorted(SETTINGS), default="quick",
                        help="preset; the flags below override its values")
    parser.add_argument("--task", choices=TASKS)
    parser.add_argument("--length", type=int, nargs="+", help="source tokens (2048 .. 16384)")
    parser.add_argument("--compression", type=int, nargs="+", help="input / kept tokens (8 .. 64)")
    parser.add_argument("--spans", type=int, help="spans task: needed spans per document")
    parser.add_argument("--span-length", type=int, help="spans task: tokens per span")
    parser.add_argument("--options", nargs="+", help=f"rows (default: {' '.join(DEFAULT_OPTIONS)}; "
                        f"also: {' '.join(o for o in OPTIONS if o not in DEFAULT_OPTIONS)})")
    parser.add_argument("--seeds", type=int, nargs="+")
    parser.add_argument("--updates", type=int, help="training updates of every run")
    parser.add_argument("--train-docs", type=int)
    parser.add_argument("--test-docs", type=int, default=64)
    parser.add_argument("--vocab", type=int, default=8000, help="dictionary size (default 8000)")
    parser.add_argument("--jobs", type=int, default=2, help="runs at a time, one thread each")
    parser.add_argument("--out", default="work_dirs/selection", help="results folder")
    args = parser.parse_args(argv)
    preset = dict(SETTINGS[args.setting])
    for key, value in (("task", args.task), ("lengths", args.length),
                       ("compressions", args.compression), ("seeds", args.seeds),
                       ("updates", args.updates), ("train_docs", args.train_docs),
                       ("spans", args.spans), ("span_length", args.span_length),
                       ("options", args.options)):
        if value is not None:
            preset[key] = value
    unknown = [o for o in preset["options"] if o not in OPTIONS]
    if unknown:
        parser.error(f"--options: unknown {unknown}; choose from {list(OPTIONS)}")
    for c in preset["compressions"]:
        if c < 2:
            parser.error(f"--compression must be >= 2, got {c}")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s | %(message)s", stream=sys.stderr)
    os.makedirs(args.out, exist_ok=True)
    results_path = os.path.join(args.out, "results.jsonl")
    done = set()
    if os.path.exists(results_path):
        with open(results_path, encoding="utf-8") as fh:
            for line in fh:
                done.add(row_key(json.loads(line)))

    done_before = len(done)
    jobs = []
    for length in preset["lengths"]:
        spec = TaskSpec(task=preset["task"], length=length, spans=preset["spans"],
                        span_length=preset["span_length"], train_docs=preset["train_docs"],
                        test_docs=args.test_docs).check()
        text_dir = os.path.join(args.out, f"{spec.task}-{length}", "text")
        if os.path.exists(os.path.join(text_dir, "task.json")):
            with open(os.path.join(text_dir, "task.json"), encoding="utf-8") as fh:
                if json.load(fh) != asdict(spec):
                    parser.error(f"{text_dir} holds another task; choose another --out")
        if not os.path.exists(os.path.join(text_dir, "task.json")):
            write_task(spec, text_dir)
        data_bin = binarize(text_dir, os.path.join(args.out, f"{spec.task}-{length}", "bin"), args.vocab)
        for compression in preset["compressions"]:
            for seed in preset["seeds"]:
                for option in preset["options"]:
                    key = run_key(spec.task, length, compression, option, seed)
                    if key in done:
                        continue
                    done.add(key)
                    unpooled = option == UNPOOLED
                    flags = list(OPTIONS[option])
                    flags += ["--enc-layers-and-token-width",
                              "{}" if unpooled else schedule(length, compression)]
                    max_len = (spec.spans * (spec.span_length + 1) if spec.task == "spans"
                               else SENTENCES_BUDGET + 40) + 8
                    run = Run(option, flags, seed, length, preset["updates"],
                              1 if unpooled else compression, max_len)
                    work = os.path.join(args.out, f"{spec.task}-{length}",
                                        "x1" if unpooled else f"x{compression}", f"{option}-seed{seed}")
                    jobs.append((spec.task, run, data_bin, text_dir, work))
    logger.info("%d runs to do (%d done before) with %d at a time", len(jobs), done_before, args.jobs)
    failures = 0
    with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        futures = {pool.submit(train_and_score, run, data_bin, text_dir, work): (task, run)
                   for task, run, data_bin, text_dir, work in jobs}
        for future in as_completed(futures):
            task, run = futures[future]
            try:
                row = dict(future.result(), task=task)
            except Exception as err:  # one failed run is reported, the others go on
                failures += 1
                logger.error("%s seed %d x%d: %s", run.option, run.seed, run.compression, err)
                continue
            logger.info("%s seed %d x%d: recall %.3f R-1 %.1f (%.0f s)", run.option, run.seed,
                        run.compression, row["recall"], row["rouge1"], row["train_seconds"])
            with open(results_path, "a", encoding="utf-8") as out:
                out.write(json.dumps(row) + "\n")
    table = write_report(results_path, args.out)
    print(table)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
