"""Speed and memory of DeepPyramidion against its baselines and a peer: the model tables.

Run as ``python -m benchmarks [flags]`` (benchmarks/__main__.py calls main()); the top-k operator
has its own command, ``python -m benchmarks.topk``. This file holds the flags, the plan (which
configurations each table runs), the orchestration (each configuration in a forked process, then
each group side by side) and the report; what a table runs and prints is in its own file.
"""
from __future__ import annotations

import argparse
import itertools
import json
import logging
import os
import sys
import textwrap
import time

from benchmarks import decoder, encoder, generate, profile, train
from benchmarks.common import (MemoryProbe, call_forked, ints, loadavg, machine_info, proc_kib,
                               read_json, side_by_side, time_runs, torch_env, write_json)
from benchmarks.memory import estimate_gib
from benchmarks.models import FAMILIES, MODELS, build, import_led
from benchmarks.rows import Rows

TABLES = {"train": train, "encoder": encoder, "generate": generate, "decoder": decoder,
          "profile": profile}
COMMAND = "python -m benchmarks"

MEASURING = """\
Measuring. Every configuration (table, model, length, beam) first runs alone in its own process,
forked from this one after the imports, so that no configuration inherits another's memory: one
run (after one untimed step for training, so that AdamW's state exists) gives its memory and a
first time. Then the models of one group (same table, length and beam) are timed side by side in
one process: --warmup untimed runs each, then --repeat rounds in which every model runs once, the
starting model rotating, so that a change in the machine's load hits all of them alike (--no-paired
times each configuration alone instead). The tables show the side-by-side times, the ratios
divide them pair by pair (model / pyramidion, same length and beam), using the minimum over the
rounds (on a shared CPU other jobs only ever add time; --stat median to change). The load average
before and after every configuration is recorded. On a CPU shared with other jobs use --threads 1:
with more threads than free cores, every parallel region waits for a descheduled thread.
Memory:
  CPU   "peak RSS": the high-water mark of the configuration's process (VmHWM of
        /proc/self/status; it starts at the forked parent's resident size, interpreter + torch +
        fairseq, shown as "base RSS"). "step peak": the resident-set high-water mark during the
        last timed run minus the resident size just before it (VmHWM reset via
        /proc/self/clear_refs, after glibc's malloc_trim): the activations, gradients and
        temporaries of one step, above the weights and optimizer state that persist.
  CUDA  torch.cuda.max_memory_allocated() over the process, and the same minus the allocation
        before the last timed run (tensors only, not the caching allocator's reserve).
Full attention is skipped with a note where the estimated memory exceeds --mem-limit-gb, and a
configuration that runs out of memory, fails or exceeds --timeout says so in its row.
On CUDA every model runs under torch.autocast(bfloat16) with float32 weights.

Examples
  python -m benchmarks --quick --json /tmp/quick.json            # smoke run, ~30 s
  python -m benchmarks --tables train --lengths 1024,2048,4096,8192,16384 --repeat 2 \\
      --json train.json
  python -m benchmarks --threads 1 --tables generate --gen-lengths 8192 --beams 4,16 \\
      --json gen.json
  python -m benchmarks --from-json train.json gen.json --plots docs   # tables + plots only
"""


def epilog():
    """The --help text after the flags: the models (benchmarks/models.py), each table's own
    summary (the first paragraph of its file's docstring), and how everything is measured; so
    a table's description is written once, beside its code."""
    import benchmarks.models as models

    tables = []
    for name, mod in TABLES.items():
        summary = " ".join(mod.__doc__.split("\n\n")[0].split(": ", 1)[1].split())
        lines = textwrap.wrap(summary, 86, break_on_hyphens=False)
        tables.append(f"  {name:<9} " + ("\n" + " " * 12).join(lines))
    return (models.__doc__.split("\n\n")[1] + "\n\nTables (--tables):\n" + "\n".join(tables)
            + "\n\n" + MEASURING)


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog=COMMAND, description=__doc__.split("\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog=epilog())
    p.add_argument("--device", default="cpu", choices=("cpu", "cuda"),
                   help="cuda runs every model under bf16 autocast (default: %(default)s)")
    p.add_argument("--tables", default="train,encoder,generate,decoder",
                   help="comma-separated subset of: " + ", ".join(TABLES) + " (default: %(default)s)")
    p.add_argument("--models", default=",".join(MODELS), help="subset of: " + ", ".join(MODELS))
    p.add_argument("--family", default="deep", choices=tuple(FAMILIES),
                   help="the models' shape: deep = pyramidion_deep's, bart-base = a converted "
                        "bart.base's (default: %(default)s)")
    p.add_argument("--lengths", default="1024,2048,4096,8192,16384",
                   help="input lengths of the train and encoder tables (default: %(default)s)")
    p.add_argument("--gen-lengths", default="8192",
                   help="input lengths of the generate table (default: %(default)s)")
    p.add_argument("--beams", default="4,16", help="beam sizes (default: %(default)s)")
    p.add_argument("--out-len", type=int, default=128,
                   help="output tokens: generation is forced to exactly this many; also the "
                        "target length of a training step (default: %(default)s)")
    p.add_argument("--batch", type=int, default=1, help="documents per training step / encoder "
                   "call (default: %(default)s)")
    p.add_argument("--gen-batch", type=int, default=1,
                   help="documents per generate call (default: %(default)s)")
    p.add_argument("--decoder-widths", default=None,
                   help="encoder_out widths of the decoder table (default: 512,8192; quick: 16,256)")
    p.add_argument("--repeat", type=int, default=3, help="timed runs per configuration "
                   "(default: %(default)s)")
    p.add_argument("--warmup", type=int, default=1, help="untimed runs first (default: %(default)s)")
    p.add_argument("--stat", default="min", choices=("min", "median"),
                   help="statistic of the ratios (default: %(default)s)")
    p.add_argument("--mem-limit-gb", type=float, default=12.0,
                   help="skip a configuration whose estimated peak exceeds this (default: %(default)s)")
    p.add_argument("--timeout", type=float, default=900.0,
                   help="seconds one configuration may take before it is stopped (default: %(default)s)")
    p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads")
    p.add_argument("--quick", action="store_true",
                   help="tiny models and lengths (smoke run): lengths 128,256, beams 2, out-len 8")
    p.add_argument("--json", default=None, metavar="PATH", help="write all results as JSON")
    p.add_argument("--plots", default=None, metavar="DIR",
                   help="write PNG plots (time and memory vs input length) into DIR")
    p.add_argument("--from-json", nargs="+", default=None, metavar="PATH",
                   help="measure nothing: merge these JSON files, print the tables, plot")
    p.add_argument("--no-paired", action="store_true",
                   help="time each configuration alone (--warmup/--repeat in its own process) "
                        "instead of side by side with the other models of its group")
    p.add_argument("--in-process", action="store_true",
                   help="run every configuration in this process (no fork; memory figures then "
                        "include earlier configurations' leftovers)")
    args = p.parse_args(argv)
    if args.quick:
        defaults = {"lengths": "1024,2048,4096,8192,16384", "gen_lengths": "8192", "beams": "4,16",
                    "out_len": 128}
        quick = {"lengths": "128,256", "gen_lengths": "256", "beams": "2", "out_len": 8}
        for key, value in quick.items():
            if getattr(args, key) == defaults[key]:
                setattr(args, key, value)
    full, quick = FAMILIES[args.family]
    args.sizes = dict(quick if args.quick else full)
    if args.decoder_widths is None:
        args.decoder_widths = "16,256" if args.quick else "512,8192"
    return args


def names(text, allowed, flag):
    out = [v.strip() for v in text.split(",") if v.strip()]
    bad = sorted(set(out) - set(allowed))
    if bad:
        sys.exit(f"{flag}: unknown {bad}; choose from {list(allowed)}")
    return out


def plan(args):
    """Every configuration to run, in the order of --tables; consecutive specs with the same
    table, length, beam and mode form a group that is timed side by side."""
    models = names(args.models, MODELS, "--models")
    lengths, gen_lengths, beams = ints(args.lengths), ints(args.gen_lengths), ints(args.beams)
    specs = []
    for table in names(args.tables, TABLES, "--tables"):
        if table in ("train", "encoder"):
            specs += TABLES[table].specs(args, models, lengths)
        elif table == "generate":
            specs += generate.specs(args, models, gen_lengths, beams)
        elif table == "decoder":
            specs += decoder.specs(args, beams)
        elif table == "profile":
            specs += profile.specs(args, models, lengths, gen_lengths, beams)
    if args.family != "deep":  # rows of the default family carry no tag, as they always did
        for spec in specs:
            spec["family"] = args.family
    return specs


# ----------------------------------------------------------------------------- one process
def run_config(spec, args):
    """Measure one configuration alone in this process; returns the row."""
    env = torch_env(args.device, args.threads)
    probe = MemoryProbe(args.device)
    mod = TABLES[spec["table"]]
    row = dict(spec)
    base = proc_kib("VmRSS")
    row["base_rss_mib"] = base / 1024 if base and not args.in_process else None
    model, d = build(spec["model"], spec["length"], args, env.device)
    if mod.PAIRED:
        fn = mod.runner(spec, args, model, d, env)
        row.update(time_runs(fn, env.sync, args.warmup, args.repeat, probe))
        row.update(fn.info)
    else:
        row.update(mod.measure(spec, args, model, d, env, probe))
    return row


def run_paired(specs, args):
    """Time the configurations of one group (same table, length, beam; one per model) side by
    side in this process (common.side_by_side). Returns one dict per spec."""
    import statistics

    env = torch_env(args.device, args.threads)
    fns = []
    for spec in specs:
        model, d = build(spec["model"], spec["length"], args, env.device)
        fns.append(TABLES[spec["table"]].runner(spec, args, model, d, env))
    times = side_by_side(fns, env.sync, args.warmup, args.repeat, rotate=True)
    return [{"paired_times_s": t, "paired_min_s": min(t), "paired_median_s": statistics.median(t),
             **fn.info} for t, fn in zip(times, fns)]


# ----------------------------------------------------------------------------- orchestration
def measure(spec, args, warmup=None, repeat=None):
    """One configuration alone in a fresh process: memory, and its own times."""
    row = dict(spec)
    row["load_before"] = loadavg()
    est = estimate_gib(spec, args.sizes)
    row["est_gib"] = round(est, 1)
    if est > args.mem_limit_gb:
        row["skipped"] = f"estimated {est:.0f} GiB > --mem-limit-gb {args.mem_limit_gb:g}"
        return row
    t0 = time.perf_counter()
    solo = argparse.Namespace(**vars(args))
    if warmup is not None:
        solo.warmup = warmup
    if repeat is not None:
        solo.repeat = repeat
    result, error = call_forked(run_config, spec, solo, timeout=args.timeout,
                                in_process=args.in_process)
    if error:
        row["error"] = error
    else:
        row.update(result)
    row["wall_s"] = time.perf_counter() - t0
    row["load_after"] = loadavg()
    return row


def measure_paired(rows, args):
    """Side-by-side times for the rows of one group that ran alone without trouble."""
    good = [r for r in rows if not r.get("skipped") and not r.get("error")]
    if len(good) < 2:
        return
    specs = [{k: r[k] for k in ("table", "model", "length", "beam", "batch") if k in r}
             for r in good]
    load_before = loadavg()
    result, error = call_forked(run_paired, specs, args, timeout=args.timeout,
                                in_process=args.in_process)
    for r, res in zip(good, result or [{}] * len(good)):
        r["paired_load"] = f"{load_before} -> {loadavg()}"
        if error:
            r["paired_error"] = error
        else:
            r.update(res)


def paired_line(row):
    what = f"  paired {row['model']:<10} T={row['length']:<6}" + \
        (f" beam={row['beam']:<3}" if "beam" in row else "")
    if row.get("paired_error"):
        return f"{what} -- {row['paired_error']}"
    times = ", ".join(f"{t:.3f}" for t in row["paired_times_s"])
    return f"{what} times [{times}] s  load {row['paired_load']}"


def short_line(row):
    what = f"{row['table']:<8} {row['model']:<10} T={row['length']:<6}"
    if "beam" in row:
        what += f" beam={row['beam']:<3}"
    if "mode" in row:
        what += f" {row['mode']}"
    if row.get("skipped") or row.get("error"):
        return f"{what} -- {row.get('skipped') or row.get('error')}"
    mem = row.get("peak_mib")
    mem = f" peak {mem:.0f} MiB step {row['step_peak_mib']:.0f} MiB" if mem and \
        row.get("step_peak_mib") is not None else ""
    return (f"{what} min {row['min_s']:.3f}s median {row.get('median_s', row['min_s']):.3f}s{mem}"
            f"  load {row['load_before']} -> {row['load_after']}")


# ----------------------------------------------------------------------------- report
def report(rows, metas, args):
    """Print every table's markdown section, then what was not measured, the loads and the
    commands; plots when --plots is given."""
    out, notes = [], []
    families = list(dict.fromkeys(r.get("family", "deep") for r in rows))
    views = {}
    for family in families:
        view = views[family] = Rows([r for r in rows if r.get("family", "deep") == family], family)
        if families != ["deep"]:
            sizes = FAMILIES[family][0]
            out.append(f"\n## {family}: {sizes['arch']} shape, {sizes['layers']}+{sizes['layers']} "
                       f"layers, d={sizes['dim']}, ffn {sizes['ffn']}, {sizes['heads']} heads, "
                       f"vocabulary {sizes['vocab']}, chunk {sizes['chunk']}, schedule "
                       f"{sizes['schedule']} (full sizes; a --quick run shrinks them)")
        for mod in TABLES.values():
            out += mod.report(view, args, notes)
    for r in rows:
        if (r.get("skipped") or r.get("error")) and r["table"] in ("decoder", "profile"):
            why = r.get("skipped") or r.get("error")
            notes.append(f"{r['table']} {r['model']} {r['length']}: {why}")
    if notes:
        out.append("\nNot measured:\n" + "\n".join(f"- {n}" for n in notes))
    loads = [(r["table"], r["model"], r["length"], r.get("load_before"), r.get("load_after"))
             for r in rows if r.get("load_before")]
    if loads:
        out.append("\nLoad average (1/5/15 min) before -> after each configuration:")
        for t, m, T, a, b in loads:
            out.append(f"- {t} {m} {T}: {a} -> {b}")
    for meta in metas:
        out.append(f"\nCommand: `{meta.get('command')}`; machine: {json.dumps(meta.get('machine'))}; "
                   f"load {meta.get('loadavg_start')} -> {meta.get('loadavg_end')}")
    print("\n".join(out))
    if args.plots:
        os.makedirs(args.plots, exist_ok=True)
        written = [mod.plot(view, args) for view in views.values() for mod in TABLES.values()
                   if hasattr(mod, "plot")]
        for path in filter(None, written):
            print(f"# wrote {path}")


def main(argv=None):
    args = parse_args(argv)
    if args.from_json:
        rows, metas = read_json(args.from_json)
        report(rows, metas, args)
        return rows

    import torch  # imported once here: every forked configuration inherits it
    import fairseq.options  # noqa: F401
    import fairseq.sequence_generator  # noqa: F401

    import deep_pyramidion.fairseq_plugin  # noqa: F401  (registers the model with fairseq)

    logging.disable(logging.WARNING)
    if args.threads:
        torch.set_num_threads(args.threads)
    led_note, led_version = None, None
    if "led" in names(args.models, MODELS, "--models"):
        try:
            led_version = import_led().__version__
        except ImportError as exc:
            led_note = f"transformers not installed or not importable ({exc})"
    meta = {
        "machine": machine_info(args.device),
        "device": args.device,
        "dtype": "bfloat16 autocast" if args.device == "cuda" else "float32",
        "sizes": args.sizes,
        "quick": args.quick,
        "out_len": args.out_len, "batch": args.batch, "gen_batch": args.gen_batch,
        "repeat": args.repeat, "warmup": args.warmup, "stat": args.stat,
        "command": " ".join([COMMAND, *(argv if argv is not None else sys.argv[1:])]),
        "loadavg_start": loadavg(),
        "started": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    if "led" in args.models:
        meta["transformers"] = led_version if not led_note else led_note
    print("# " + json.dumps({k: meta[k] for k in ("machine", "device", "dtype", "loadavg_start")}))
    rows = []
    group_key = (lambda s: (s["table"], s["length"], s.get("beam"), s.get("mode")))
    for (table, *_), group in itertools.groupby(plan(args), key=group_key):
        paired = TABLES[table].PAIRED and not args.no_paired
        group_rows = []
        for spec in group:
            if spec["model"] == "led" and led_note:
                rows.append(dict(spec, skipped=led_note))
                continue
            if paired:  # alone: memory (after one step for training: AdamW state exists)
                row = measure(spec, args, warmup=1 if table == "train" else 0, repeat=1)
            else:
                row = measure(spec, args)
            rows.append(row)
            group_rows.append(row)
            print(short_line(row), flush=True)
        if paired:
            measure_paired(group_rows, args)
            for row in group_rows:
                if row.get("paired_times_s") or row.get("paired_error"):
                    print(paired_line(row), flush=True)
    meta["loadavg_end"] = loadavg()
    meta["finished"] = time.strftime("%Y-%m-%d %H:%M:%S")
    if args.json:
        write_json(args.json, meta, rows)
    report(rows, metas=[meta], args=args)
    return rows
