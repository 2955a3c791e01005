"""The selection benchmark's table and plot, from its results.jsonl (one row per run).

    python -m benchmarks.selection.report work_dirs/selection       # table.md + quality.png again
"""
from __future__ import annotations

import json
import logging
import os
import statistics
import sys
from collections import defaultdict
from typing import Dict, List, Tuple

logger = logging.getLogger("benchmarks.selection")

METRICS = ("recall", "token_accuracy", "rouge1", "rouge2", "rougeL", "train_seconds", "generate_seconds")


def read_rows(path: str) -> List[Dict]:
    with open(path, encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


UNPOOLED = "none"   # the option that keeps every token: one run per seed serves every compression


def run_key(task: str, length: int, compression: int, option: str, seed: int) -> tuple:
    """A run's identity. The unpooled model has no schedule, so its key has no compression: one
    run per seed serves every compression (the runner trains it once, the report shows it at
    each)."""
    return (task, length, None if option == UNPOOLED else compression, option, seed)


def row_key(row: Dict) -> tuple:
    return run_key(row["task"], row["length"], row["compression"], row["option"], row["seed"])


def aggregate(rows: List[Dict]) -> Dict[Tuple, Dict]:
    """(task, length, compression, option) -> {metric: (mean, std), "seeds": n}.

    A run counts once (the first row of its key: an unpooled seed written at several
    compressions, before the unpooled model ran once, is one run), and the unpooled model's group
    stands at every compression of its task and length."""
    runs: Dict[tuple, Dict] = {}
    for row in rows:
        runs.setdefault(row_key(row), row)
    groups = defaultdict(list)
    for (task, length, compression, option, _seed), row in runs.items():
        groups[(task, length, compression, option)].append(row)
    compressions = defaultdict(set)
    for task, length, compression, _ in groups:
        if compression is not None:
            compressions[(task, length)].add(compression)
    for task, length, _, option in [key for key in groups if key[2] is None]:
        members = groups.pop((task, length, None, option))
        for compression in compressions[(task, length)] or {None}:
            groups[(task, length, compression, option)] = members
    out = {}
    for key, members in groups.items():
        stats = {"seeds": len(members)}
        for metric in METRICS:
            values = [m[metric] for m in members if m.get(metric) is not None]
            if values:
                stats[metric] = (statistics.fmean(values),
                                 statistics.stdev(values) if len(values) > 1 else 0.0)
        out[key] = stats
    return out


def format_table(summary: Dict[Tuple, Dict]) -> str:
    """One markdown table per (task, length, compression), options ranked by mean recall."""
    lines = []
    settings = sorted({key[:3] for key in summary}, key=lambda k: (k[0], k[1], k[2] or 0))
    for task, length, compression in settings:
        where = f"{compression}x compression" if compression else "unpooled only"
        lines.append(f"**{task}, {length} tokens, {where}**\n")
        lines.append("| rank | option | seeds | exact recall | token accuracy | R-1 | R-2 | R-L "
                     "| train s | generate s |")
        lines.append("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
        options = [(key[3], stats) for key, stats in summary.items()
                   if key[:3] == (task, length, compression)]
        options.sort(key=lambda item: (-item[1].get("recall", (0, 0))[0],
                                       -item[1].get("token_accuracy", (0, 0))[0]))
        for rank, (option, stats) in enumerate(options, 1):
            def cell(metric, digits):
                if metric not in stats:
                    return "-"
                mean, std = stats[metric]
                return f"{mean:.{digits}f} ± {std:.{digits}f}"
            lines.append(f"| {rank} | {option} | {stats['seeds']} | {cell('recall', 3)} | "
                         f"{cell('token_accuracy', 3)} | "
                         f"{cell('rouge1', 1)} | {cell('rouge2', 1)} | {cell('rougeL', 1)} | "
                         f"{cell('train_seconds', 0)} | {cell('generate_seconds', 0)} |")
        lines.append("")
    return "\n".join(lines)


def plot(summary: Dict[Tuple, Dict], path: str) -> bool:
    """Recall against compression, one line per option (per task and length), the unpooled model
    a dashed line; where some options were run at several compressions, the options run at one
    only are left out of the plot (the table has them). False without matplotlib."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        logger.warning("matplotlib is not installed: no plot")
        return False
    panels = sorted({key[:2] for key in summary})
    fig, axes = plt.subplots(1, len(panels), figsize=(6 * len(panels), 4.5), squeeze=False)
    for ax, (task, length) in zip(axes[0], panels):
        options = sorted({key[3] for key in summary if key[:2] == (task, length)})
        spread = defaultdict(set)
        for key in summary:
            if key[:2] == (task, length) and key[2]:
                spread[key[3]].add(key[2])
        if any(len(c) > 1 for o, c in spread.items() if o != UNPOOLED):
            options = [o for o in options if o == UNPOOLED or len(spread[o]) > 1]
        for option in options:
            points = sorted((key[2], stats["recall"]) for key, stats in summary.items()
                            if key[:2] == (task, length) and key[3] == option and "recall" in stats
                            and key[2])
            if not points:
                continue
            xs = [c for c, _ in points]
            if option == UNPOOLED:   # the same runs at every compression: a band, not a curve
                mean, std = points[0][1]
                line = ax.axhline(mean, color="black", linestyle="--", label=f"{option} (keeps all)")
                ax.axhspan(mean - std, mean + std, color=line.get_color(), alpha=0.08)
                continue
            ax.errorbar(xs, [m for _, (m, _) in points], yerr=[s for _, (_, s) in points],
                        marker="o", capsize=3, label=option)
        ax.set_xscale("log", base=2)
        ax.set_xlabel("compression (input tokens / kept tokens)")
        ax.set_ylabel("exact recall of the needed pieces")
        ax.set_title(f"{task}, {length} tokens (mean ± std over seeds)")
        ax.set_ylim(0, 1)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def write_report(results_path: str, out_dir: str) -> str:
    summary = aggregate(read_rows(results_path))
    table = format_table(summary)
    with open(os.path.join(out_dir, "table.md"), "w", encoding="utf-8") as out:
        out.write(table + "\n")
    plot(summary, os.path.join(out_dir, "quality.png"))
    return table


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    folder = sys.argv[1] if len(sys.argv) > 1 else "work_dirs/selection"
    print(write_report(os.path.join(folder, "results.jsonl"), folder))
