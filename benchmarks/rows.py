"""The result rows of the model tables, as the reports read them, and the layout that the train
and encoder tables share (time and memory against the input length).

A row is one configuration (table, model, length, and beam or mode where the table has them),
exactly as written to the JSON; the reports only read rows, so a JSON written earlier prints the
same tables again (--from-json).
"""
from __future__ import annotations

import os

from benchmarks.models import BASELINE, MODELS

# plot colour and marker per model, the same in every figure
STYLE = {"pyramidion": ("C0", "o"), "blockwise": ("C1", "s"), "full": ("C2", "^"),
         "led": ("C3", "D")}


def stat_key(args):
    """The row field the tables and ratios read: the minimum or the median over the runs."""
    return "min_s" if args.stat == "min" else "median_s"


def fmt(v, digits=2):
    return "-" if v is None else f"{v:.{digits}f}"


def tm(row, key):
    """The side-by-side time where there is one, else the configuration's own."""
    return row.get("paired_" + key) or row[key]


class Rows:
    """Look-ups over the rows: the measured ones, and why the others were not measured."""

    def __init__(self, rows, family="deep"):
        self.all = rows
        self.family = family
        self.ok = [r for r in rows if not r.get("skipped") and not r.get("error")]

    def find(self, table, model, length, beam=None, mode=None):
        for r in self.ok:
            if (r["table"], r["model"], r["length"]) == (table, model, length) and \
                    r.get("beam") == beam and r.get("mode") == mode:
                return r
        return None

    def note(self, table, model, length, beam=None):
        for r in self.all:
            if (r["table"], r["model"], r["length"]) == (table, model, length) and \
                    r.get("beam") == beam and (r.get("skipped") or r.get("error")):
                return r.get("skipped") or r.get("error")
        return None

    def has(self, table):
        return any(r["table"] == table for r in self.all)

    def models_in(self, table):
        return [m for m in MODELS if any(r["table"] == table and r["model"] == m
                                         for r in self.all)]

    def lengths_in(self, table):
        return sorted({r["length"] for r in self.all if r["table"] == table})


def plot_path(rows: Rows, table, args):
    """benchmark_<table>.png, benchmark_<table>_<family>.png for a family other than the default."""
    suffix = "" if rows.family == "deep" else "_" + rows.family.replace("-", "_")
    return os.path.join(args.plots, f"benchmark_{table}{suffix}.png")


def length_table(rows: Rows, table, title, args, notes):
    """Markdown lines: per input length, each model's time, peak and step peak, the time ratios
    to the pyramidion and its memory ratios to the blockwise baseline. Appends to notes why a
    configuration has no figures."""
    if not rows.has(table):
        return []
    key = stat_key(args)
    models = rows.models_in(table)
    out = [f"\n### {title}: time in s ({args.stat} of the timed runs, side by side where the "
           f"models share a group), peak memory in MiB\n"]
    head = "| input | " + " | ".join(f"{m} s | {m} peak | {m} step peak" for m in models) + " | "
    head += " | ".join(f"{m} / pyramidion time" for m in models if m != "pyramidion")
    head += " | pyramidion / blockwise step peak | pyramidion / blockwise peak |"
    out.append(head)
    out.append("|" + "---|" * (head.count("|") - 1))
    for T in rows.lengths_in(table):
        cells = [f"{T}"]
        pyr = rows.find(table, "pyramidion", T)
        for m in models:
            r = rows.find(table, m, T)
            if r is None:
                n = rows.note(table, m, T)
                if n:
                    notes.append(f"{table} {m} {T}: {n}")
                cells += ["n/a" if n else "-", "-", "-"]
            else:
                cells += [fmt(tm(r, key), 3), fmt(r.get("peak_mib"), 0),
                          fmt(r.get("step_peak_mib"), 0)]
        for m in models:
            if m == "pyramidion":
                continue
            r = rows.find(table, m, T)
            cells.append(f"{tm(r, key) / tm(pyr, key):.2f}x" if r and pyr else "-")
        base = rows.find(table, BASELINE, T)
        if pyr and base and pyr.get("step_peak_mib") and base.get("step_peak_mib"):
            cells.append(f"{pyr['step_peak_mib'] / base['step_peak_mib']:.2f}x")
            cells.append(f"{pyr['peak_mib'] / base['peak_mib']:.2f}x")
        else:
            cells += ["-", "-"]
        out.append("| " + " | ".join(cells) + " |")
    return out


def length_plot(rows: Rows, table, title, args):
    """benchmark_<table>.png in args.plots: time and memory against the input length, log-log.
    -> the path written, or None when the table has no measured row."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    key = stat_key(args)
    sel = [r for r in rows.ok if r["table"] == table]
    if not sel:
        return None
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for m in MODELS:
        pts = sorted((r["length"], tm(r, key), r.get("peak_mib"), r.get("step_peak_mib"))
                     for r in sel if r["model"] == m)
        if not pts:
            continue
        c, mk = STYLE[m]
        xs = [p[0] for p in pts]
        axes[0].plot(xs, [p[1] for p in pts], marker=mk, color=c, label=m)
        if all(p[2] for p in pts):
            axes[1].plot(xs, [p[2] / 1024 for p in pts], marker=mk, color=c, label=f"{m} peak")
        if all(p[3] is not None for p in pts):
            axes[1].plot(xs, [p[3] / 1024 for p in pts], marker=mk, color=c, ls="--",
                         label=f"{m} step peak")
    for ax, ylabel in zip(axes, ("time (s)", "memory (GiB)")):
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("input length (tokens)")
        ax.set_ylabel(ylabel)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
    axes[0].set_title(f"{title}: time")
    axes[1].set_title(f"{title}: memory (solid: process peak, dashed: step)")
    fig.tight_layout()
    path = plot_path(rows, table, args)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
