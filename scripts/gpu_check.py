"""Every CUDA check of the project in one run, within a time budget: the steps that
scripts/gpu_check.sh runs once it has set up a python (use that script; it is the one command).

    python scripts/gpu_check.py OUT_DIR [--budget 480] [--dry-run]

Steps, each run even when an earlier one failed, each in its own process with a timeout that the
remaining budget caps (a step that cannot get its minimum time is "skipped"):

  environment        GPU model, driver, CUDA, torch, triton, transformers, fairseq versions
  topk_kernels       the CUDA tests of the top-k: Triton kernel vs the reference and vs the torch
                     path, forward and backward, float32 / bfloat16 / float16, awkward shapes and
                     the paper's B=16 n=8192 k=512 with D=512 and D=1024 (tests/unit/
                     test_topk_triton_cuda.py)
  model_triton       the model with --topk-impl triton on CUDA against the torch path: outputs,
                     every parameter's gradient, beam search (tests/integration/test_model_triton.py)
  bench_topk_float32 / bench_topk_bfloat16
                     python -m benchmarks.topk --device cuda at the paper's shapes, with the floor
                     (one read of x)
  bench_models       python -m benchmarks --device cuda, training step and generation tables at
                     8192 and 16384 tokens, pyramidion vs blockwise vs full vs HF LED, bf16 autocast
  fairseq_train_bf16 two minutes of fairseq-train --bf16 of pyramidion_deep on ACLSum on the GPU:
                     the loss goes down, no NaN/inf, tokens per second (run before the benchmarks:
                     its two minutes are fixed, their times vary)

OUT_DIR gets summary.json (one entry per step: name, status ok/failed/skipped, seconds, figures,
and the environment), summary.txt, and each step's log and JSON. The summary is rewritten after
every step, so a run stopped from outside still leaves what it has. --dry-run runs every step on
the CPU with tiny sizes (the Triton steps under Triton's interpreter), in a few minutes; the test
suite runs it so that this script cannot rot between GPUs.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import re
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional

REPO = Path(__file__).resolve().parents[1]


@dataclass
class Step:
    name: str
    command: Callable[["Run"], List[str]]
    cap: float                                 # seconds this step may take at most
    minimum: float                             # not started with less than this left
    figures: Callable[["Run", str], Dict] = lambda run, log: {}
    env: Dict[str, str] = field(default_factory=dict)


@dataclass
class Run:
    out: Path
    dry: bool
    python: str

    def path(self, name: str) -> str:
        return str(self.out / name)


# ------------------------------------------------------------------------------ the steps
def environment(run: Run) -> List[str]:
    code = ("import json, platform, subprocess, importlib\n"
            "info = {'python': platform.python_version()}\n"
            "for name in ('torch', 'triton', 'transformers', 'fairseq', 'numpy'):\n"
            "    try:\n        info[name] = importlib.import_module(name).__version__\n"
            "    except Exception as err:\n        info[name] = f'not importable: {err!r}'[:120]\n"
            "import torch\n"
            "info['cuda_available'] = torch.cuda.is_available()\n"
            "if torch.cuda.is_available():\n"
            "    info['gpu'] = torch.cuda.get_device_name(0)\n"
            "    info['cuda'] = torch.version.cuda\n"
            "    p = torch.cuda.get_device_properties(0)\n"
            "    info['gpu_memory_gib'] = round(p.total_memory / 2**30, 1)\n"
            "try:\n"
            "    q = subprocess.run(['nvidia-smi', '--query-gpu=name,driver_version', "
            "'--format=csv,noheader'], capture_output=True, text=True, timeout=30)\n"
            "    info['nvidia_smi'] = q.stdout.strip() or q.stderr.strip()\n"
            "except OSError as err:\n    info['nvidia_smi'] = f'not available: {err}'\n"
            f"json.dump(info, open({run.path('environment.json')!r}, 'w'), indent=1)\n"
            "print(json.dumps(info))\n")
    return [run.python, "-c", code]


def environment_figures(run: Run, log: str) -> Dict:
    return json.loads(Path(run.path("environment.json")).read_text())


def pytest(files: List[str]):
    def command(run: Run) -> List[str]:
        return [run.python, "-m", "pytest", *files, "-q", "-p", "no:cacheprovider",
                "-o", "addopts=", "-rs"]
    return command


def pytest_figures(run: Run, log: str) -> Dict:
    counts = {kind: int(n) for n, kind in re.findall(r"(\d+) (passed|failed|skipped|error)", log)}
    return counts


def topk_tests(run: Run) -> List[str]:
    files = ["tests/integration/test_topk_triton_interpreter.py"] if run.dry else \
        ["tests/unit/test_topk_triton_cuda.py"]
    return pytest(files)(run)


def bench_topk(dtype: str):
    def command(run: Run) -> List[str]:
        sizes = ["--shapes", "64:8,40:7", "--dims", "16", "--batch", "2", "--repeat", "2"] \
            if run.dry else ["--shapes", "8192:512,8192:2048,2048:512", "--dims", "512,1024",
                             "--batch", "16", "--repeat", "10"]
        return [run.python, "-m", "benchmarks.topk", "--device", "cpu" if run.dry else "cuda",
                "--dtype", dtype, *sizes, "--json", run.path(f"bench_topk_{dtype}.json")]
    return command


def bench_topk_figures(dtype: str):
    def figures(run: Run, log: str) -> Dict:
        data = json.loads(Path(run.path(f"bench_topk_{dtype}.json")).read_text())
        rows = data["results"]
        out = {}
        for row in rows:
            key = f"{row.get('impl')} {row.get('mode')} n={row.get('n')} k={row.get('k')} " \
                  f"D={row.get('D')}"
            out[key] = {k: (round(row[k], 3) if isinstance(row[k], float) else row[k])
                        for k in ("ms", "min_ms", "peak_mib", "speedup_vs_reference", "times_floor",
                                  "skipped", "error") if row.get(k) is not None}
        return out
    return figures


def bench_models(run: Run) -> List[str]:
    sizes = ["--quick", "--tables", "train,generate", "--repeat", "1", "--warmup", "0"] if run.dry \
        else ["--tables", "train,generate", "--lengths", "8192,16384", "--gen-lengths", "8192,16384",
              "--beams", "4", "--repeat", "2", "--warmup", "1", "--mem-limit-gb", "120",
              "--timeout", "150"]
    return [run.python, "-m", "benchmarks", "--device", "cpu" if run.dry else "cuda", *sizes,
            "--json", run.path("bench_models.json")]


def bench_models_figures(run: Run, log: str) -> Dict:
    data = json.loads(Path(run.path("bench_models.json")).read_text())
    out = {}
    for row in data["results"]:
        key = f"{row['table']} {row['model']} T={row['length']}" + \
            (f" beam={row['beam']}" if "beam" in row else "")
        if row.get("skipped") or row.get("error"):
            out[key] = row.get("skipped") or row.get("error")
        else:
            out[key] = {k: row[k] for k in ("min_s", "median_s", "paired_min_s", "peak_mib",
                                            "step_peak_mib") if row.get(k) is not None}
    return out


def train_bf16(run: Run) -> List[str]:
    """prepare ACLSum -> preprocess -> fairseq-train --bf16, as one shell pipeline."""
    work = run.out / "fairseq_train"
    py = run.python
    if run.dry:
        model = ["--arch", "pyramidion_tiny", "--max-update", "16", "--max-tokens", "4096", "--cpu",
                 "--max-source-positions", "1024", "--log-interval", "1", "--lr", "3e-3",
                 "--warmup-updates", "1"]
        prep = ["--max-source-words", "600"]
    else:
        model = ["--arch", "pyramidion_deep", "--max-update", "1000000", "--stop-time-hours",
                 "0.0333", "--max-tokens", "16384", "--max-source-positions", "8192",
                 "--log-interval", "10", "--lr", "5e-4", "--warmup-updates", "50"]
        prep = []
    text, data, save = work / "text", work / "bin", work / "checkpoints"
    script = " && ".join([
        " ".join([py, str(REPO / "scripts" / "prepare_aclsum.py"), "--out", str(text), *prep]),
        " ".join([py, str(REPO / "scripts" / "preprocess.py"), "--data", str(text), "--out",
                  str(data), "--vocab-size", "1000" if run.dry else "4000",
                  "--workers", str(min(8, os.cpu_count() or 1))]),
        # fairseq_cli.train, not the console script: on the GPU machine fairseq is a build on
        # PYTHONPATH, with no console scripts
        " ".join([py, "-m", "fairseq_cli.train", str(data), "--user-dir",
                  str(REPO / "deep_pyramidion"), "--task", "translation", "--source-lang", "src",
                  "--target-lang", "tgt", *model, "--truncate-source", "--max-target-positions",
                  "1024", "--bf16", "--optimizer", "adam", "--lr-scheduler", "inverse_sqrt",
                  "--criterion",
                  "label_smoothed_cross_entropy", "--label-smoothing", "0.1",
                  "--share-all-embeddings", "--disable-validation", "--no-save",
                  "--save-dir", str(save), "--log-format", "simple", "--num-workers", "2",
                  "--required-batch-size-multiple", "1"]),
    ])
    # a fresh folder each run: the check's own scratch space in OUT_DIR
    return ["bash", "-c", f"rm -rf {work} && mkdir -p {work} && {script}"]


def train_figures(run: Run, log: str) -> Dict:
    rows = [(int(u), float(loss), float(wps)) for loss, wps, u in re.findall(
        r"train_inner .*? loss=([-\w.]+),.*?wps=([\d.]+),.*?num_updates=(\d+)", log)
        if _number(loss)]
    losses = [loss for _, loss, _ in rows]
    bad = re.findall(r"train_inner .*? loss=((?:nan|inf|-inf))", log)
    figures = {"updates": rows[-1][0] if rows else 0, "log_points": len(rows),
               "first_loss": losses[0] if losses else None, "last_loss": losses[-1] if losses else None,
               "nonfinite_losses": len(bad),
               "tokens_per_second": round(sum(w for *_, w in rows[1:]) / max(1, len(rows) - 1), 1)
               if len(rows) > 1 else None}
    # down: the mean of the last quarter of the logged losses below the mean of the first quarter
    quarter = max(1, len(losses) // 4)
    figures["loss_went_down"] = len(losses) > 1 and \
        sum(losses[-quarter:]) / quarter < sum(losses[:quarter]) / quarter
    if not figures["loss_went_down"] or bad:
        raise StepFailed("the loss did not go down" if not bad else "non-finite losses", figures)
    return figures


def _number(text: str) -> bool:
    try:
        return float(text) == float(text) and abs(float(text)) != float("inf")
    except ValueError:
        return False


class StepFailed(Exception):
    def __init__(self, reason: str, figures: Dict):
        super().__init__(reason)
        self.figures = figures


def model_triton(run: Run) -> List[str]:
    return pytest(["tests/integration/test_model_triton.py"])(run)


STEPS = [
    Step("environment", environment, cap=60, minimum=5, figures=environment_figures),
    Step("topk_kernels", topk_tests, cap=150, minimum=20, figures=pytest_figures,
         env={"TRITON_INTERPRET": "1"}),
    Step("model_triton", model_triton, cap=120, minimum=20, figures=pytest_figures,
         env={"TRITON_INTERPRET": "1"}),
    # the training run is two minutes by construction: before the benchmarks, whose time varies
    Step("fairseq_train_bf16", train_bf16, cap=210, minimum=60, figures=train_figures),
    Step("bench_topk_float32", bench_topk("float32"), cap=60, minimum=15,
         figures=bench_topk_figures("float32")),
    Step("bench_topk_bfloat16", bench_topk("bfloat16"), cap=60, minimum=15,
         figures=bench_topk_figures("bfloat16")),
    Step("bench_models", bench_models, cap=240, minimum=40, figures=bench_models_figures),
]


# ------------------------------------------------------------------------------ running
def run_step(step: Step, run: Run, seconds_left: float) -> Dict:
    entry = {"name": step.name, "status": "skipped", "seconds": 0.0, "figures": {}}
    if seconds_left < step.minimum:
        entry["reason"] = f"{seconds_left:.0f} s of the budget left, the step needs {step.minimum:.0f}"
        return entry
    timeout = min(step.cap, seconds_left)
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    if run.dry:
        env.update(step.env)                    # the interpreter only where there is no GPU
    log_path = run.out / f"{step.name}.log"
    start = time.perf_counter()
    try:
        with open(log_path, "w") as log:
            proc = subprocess.run(step.command(run), cwd=REPO, env=env, stdout=log,
                                  stderr=subprocess.STDOUT, timeout=timeout)
        code = proc.returncode
    except subprocess.TimeoutExpired:
        code = None
    entry["seconds"] = round(time.perf_counter() - start, 1)
    text = log_path.read_text(errors="replace")
    entry["log"] = log_path.name
    if code is None:
        entry.update(status="failed", reason=f"stopped after {timeout:.0f} s (its share of the budget)")
    elif code != 0:
        entry.update(status="failed", reason=f"exit status {code}: " + _last_line(text))
    else:
        entry["status"] = "ok"
    try:
        entry["figures"] = step.figures(run, text)
    except StepFailed as failed:           # the command ran, but what it measured is wrong
        entry["figures"] = failed.figures
        if entry["status"] == "ok":
            entry.update(status="failed", reason=str(failed))
    except Exception as err:  # a step that failed early has no JSON to read: say so, go on
        if entry["status"] == "ok":
            entry.update(status="failed", reason=f"its figures could not be read ({err!r})")
    return entry


def _last_line(text: str) -> str:
    lines = [l for l in text.strip().splitlines() if l.strip()]
    return lines[-1][:300] if lines else "(no output)"


def write_summary(run: Run, summary: Dict) -> None:
    (run.out / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    lines = [f"GPU check {'(dry run on the CPU) ' if run.dry else ''}started {summary['started']}, "
             f"budget {summary['budget_s']} s, {summary['elapsed_s']} s used"]
    env = next((s["figures"] for s in summary["steps"] if s["name"] == "environment"), {})
    if env:
        lines.append("environment: " + ", ".join(f"{k} {v}" for k, v in env.items()))
    for step in summary["steps"]:
        line = f"{step['name']:<20} {step['status']:<8} {step['seconds']:>7.1f} s"
        if step.get("reason"):
            line += f"  {step['reason']}"
        lines.append(line)
        if step["name"] != "environment" and step["figures"]:
            for key, value in list(step["figures"].items())[:40]:
                lines.append(f"    {key}: {value}")
    (run.out / "summary.txt").write_text("\n".join(lines) + "\n")


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog=__doc__.split("\n\n", 1)[1])
    parser.add_argument("out", metavar="OUT_DIR")
    parser.add_argument("--budget", type=float, default=480.0,
                        help="seconds for all steps together (default: %(default)s)")
    parser.add_argument("--dry-run", action="store_true",
                        help="every step on the CPU with tiny sizes (Triton under its interpreter)")
    parser.add_argument("--steps", default=",".join(s.name for s in STEPS),
                        help="comma-separated subset of the steps (default: all)")
    args = parser.parse_args(argv)
    names = [n.strip() for n in args.steps.split(",") if n.strip()]
    unknown = sorted(set(names) - {s.name for s in STEPS})
    if unknown:
        parser.error(f"--steps: unknown {unknown}; the steps are {[s.name for s in STEPS]}")
    if args.budget <= 0:
        parser.error("--budget must be positive")
    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    run = Run(out, args.dry_run, sys.executable)
    begin = time.perf_counter()
    summary = {"started": time.strftime("%Y-%m-%d %H:%M:%S"), "budget_s": args.budget,
               "dry_run": args.dry_run, "host": platform.node(), "elapsed_s": 0.0, "steps": []}
    for step in (s for s in STEPS if s.name in names):
        left = args.budget - (time.perf_counter() - begin)
        entry = run_step(step, run, left)
        summary["steps"].append(entry)
        summary["elapsed_s"] = round(time.perf_counter() - begin, 1)
        write_summary(run, summary)
        print(f"{entry['name']:<20} {entry['status']:<8} {entry['seconds']:>7.1f} s "
              f"{entry.get('reason', '')}", flush=True)
    failed = [s["name"] for s in summary["steps"] if s["status"] == "failed"]
    print(f"summary: {out / 'summary.txt'}; failed: {', '.join(failed) or 'none'}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
