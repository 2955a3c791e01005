#!/usr/bin/env python
"""Benchmark the successive-halving top-k implementations side by side.

Shape legend: B batch, n input length, k output width, D features.

Rows (per shape, dtype, device):
  reference  deep_pyramidion.topk, impl="reference": round by round, looping over batch items
             (the way the paper's released code computes it)
  torch      impl="torch": two-phase (tournament on scores + one embedding_bag)
  triton     impl="triton": torch phase 1 + Triton phase 2 (CUDA only; skipped elsewhere)
  hard_topk  torch.topk(scores, k) + gather of the k rows, scaled by their scores (so both x and
             scores get gradients): what a hard selection costs
  floor      forward: x.sum(1), one read of x, the memory-bandwidth floor of anything that reads x.
             forward+backward: x.sum(1) plus one materialised x-sized gradient write (autograd's
             own backward of sum is a free broadcast view, which would understate the floor)

Times are the median and the minimum over --repeat runs after one warm-up run, in milliseconds,
with the candidates of a block taking turns (so a change in the machine's load hits all alike);
the ratios use the statistic chosen by --stat (median by default). On a shared CPU other jobs
only ever add time, so the minimum is the less disturbed figure: use --stat min there.
Memory ("peak MiB") is the peak extra memory of one call (forward, or forward+backward) above what
was allocated before it:
  CUDA: torch.cuda.max_memory_allocated() after reset_peak_memory_stats(), minus the allocation
        before the call (tensors only, not the caching allocator's reserve).
  CPU:  peak resident set size of the process (VmHWM in /proc/self/status, reset through
        /proc/self/clear_refs) minus the resident size before the call, after glibc's
        malloc_trim(0) has handed freed heap pages back (otherwise memory the allocator reuses
        would not show). It counts resident pages, not tensor bytes: close to the peak of live
        allocations, give or take allocator slack; "n/a" where /proc is not available.

Examples
  python scripts/bench_topk.py                                   # all shapes, CPU, float32
  python scripts/bench_topk.py --shapes 8192:512 --dims 512 --repeat 5
  python scripts/bench_topk.py --device cuda --dtype bfloat16 --json bench.json
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from bench_memory import loadavg, malloc_trim, proc_kib  # noqa: E402  (scripts/, beside this file)
from deep_pyramidion.topk import successive_halving_topk  # noqa: E402

IMPLS = ("reference", "torch", "triton", "hard_topk", "floor")
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--shapes", default="2048:512,8192:2048,8192:512",
                   help="comma-separated n:k pairs (default: %(default)s)")
    p.add_argument("--dims", default="512,768", help="comma-separated D values (default: %(default)s)")
    p.add_argument("--batch", type=int, default=16, help="B (default: %(default)s)")
    p.add_argument("--device", default="cpu", help="cpu or cuda (default: %(default)s)")
    p.add_argument("--dtype", default="float32", choices=sorted(DTYPES))
    p.add_argument("--repeat", type=int, default=5, help="timed runs per cell (default: %(default)s)")
    p.add_argument("--stat", default="median", choices=["median", "min"],
                   help="statistic the ratios use (default: %(default)s; min on a shared CPU)")
    p.add_argument("--impls", default=",".join(IMPLS), help="subset of: " + ", ".join(IMPLS))
    p.add_argument("--modes", default="fwd,fwdbwd", help="fwd and/or fwdbwd (default: %(default)s)")
    p.add_argument("--threads", type=int, default=None,
                   help="torch.set_num_threads (default: torch's own choice, one per core)")
    p.add_argument("--json", default=None, metavar="PATH", help="also write all results as JSON")
    return p.parse_args(argv)


# ----------------------------------------------------------------------------- the candidates
def make_call(impl, x, scores, k, grad_y):
    """A closure running one forward (grad_y None) or forward+backward of `impl`."""

    def run_topk(name):
        y, _, _ = successive_halving_topk(x, scores, k, impl=name)
        return y

    def hard_topk():
        top = torch.topk(scores, k, dim=1)  # (B, k)
        rows = x.gather(1, top.indices.unsqueeze(-1).expand(-1, -1, x.shape[2]))  # (B, k, D)
        return rows * top.values.unsqueeze(-1).to(x.dtype)

    def floor_fwd():
        return x.sum(1)  # (B, D)

    def call():
        if impl == "floor":
            y = floor_fwd()
            if grad_y is not None:  # one x-sized gradient write, as any real backward must do
                grad_x = grad_y[:, None, :].expand_as(x).contiguous()  # (B, n, D)
                del grad_x
            return y
        y = hard_topk() if impl == "hard_topk" else run_topk(impl)
        if grad_y is not None:
            y.backward(grad_y)
            x.grad = None
            scores.grad = None
        return y

    return call


# ----------------------------------------------------------------------------- measuring
def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def peak_extra_mib(call, device):
    """Peak memory of one call above the memory in use before it (see the module docstring)."""
    if device.type == "cuda":
        sync(device)
        before = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
        call()
        sync(device)
        return (torch.cuda.max_memory_allocated(device) - before) / 2**20
    malloc_trim()
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")  # resets VmHWM to the current resident size
    except OSError:
        return None
    before = proc_kib("VmRSS")
    call()
    peak = proc_kib("VmHWM")
    if before is None or peak is None:
        return None
    return max(0, peak - before) / 1024


def time_interleaved(calls, device, repeat):
    """Per-call times in ms, {name: [t, ...]}. The candidates take turns (a, b, c, a, b, c, ...)
    so that a change in the load of a shared machine hits all of them alike."""
    for call in calls.values():
        call()  # warm-up: first-touch allocations, Triton compilation, caches
        sync(device)
    times = {name: [] for name in calls}
    for _ in range(repeat):
        for name, call in calls.items():
            t0 = time.perf_counter()
            call()
            sync(device)
            times[name].append((time.perf_counter() - t0) * 1e3)
    return times


# ----------------------------------------------------------------------------- main
def main(argv=None):
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    dtype = DTYPES[args.dtype]
    impls = [s.strip() for s in args.impls.split(",") if s.strip()]
    unknown = sorted(set(impls) - set(IMPLS))
    if unknown:
        sys.exit(f"unknown --impls {unknown}; choose from {IMPLS}")
    if "triton" in impls and device.type != "cuda":
        impls.remove("triton")
        print("# triton skipped: it needs --device cuda")
    modes = [s.strip() for s in args.modes.split(",") if s.strip()]
    shapes = [tuple(int(v) for v in s.split(":")) for s in args.shapes.split(",") if s.strip()]
    dims = [int(v) for v in args.dims.split(",") if v.strip()]

    cpu_name = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as fh:
            names = [ln.split(":", 1)[1].strip() for ln in fh if ln.startswith("model name")]
        cpu_name = names[0] if names else cpu_name
    except OSError:
        pass
    meta = {
        "torch": torch.__version__,
        "device": str(device) if device.type != "cuda" else torch.cuda.get_device_name(device),
        "cpu": cpu_name,
        "threads": torch.get_num_threads(),
        "dtype": args.dtype,
        "batch": args.batch,
        "repeat": args.repeat,
        "stat": args.stat,
        # the CPU may be shared: the 1/5/15-minute load averages say how busy it was
        "loadavg_start": loadavg(),
        "command": " ".join([os.path.basename(sys.executable), *sys.argv]),
    }
    print("# " + ", ".join(f"{k}={v}" for k, v in meta.items()))

    results = []
    gen = torch.Generator().manual_seed(0)
    for n, k in shapes:
        for D in dims:
            x0 = torch.randn(args.batch, n, D, generator=gen).to(device=device, dtype=dtype)
            s0 = (torch.sigmoid(torch.randn(args.batch, n, generator=gen)) + 1e-5).to(device)
            for mode in modes:
                need_grad = mode == "fwdbwd"
                calls = {}
                for impl in impls:
                    x = x0.clone().requires_grad_(need_grad)
                    scores = s0.clone().requires_grad_(need_grad)
                    grad_y = None
                    if need_grad:  # the gradient of y: (B, k, D), or (B, D) for the floor's sum
                        out_shape = (args.batch, D) if impl == "floor" else (args.batch, k, D)
                        grad_y = torch.randn(*out_shape, generator=gen).to(device, dtype)
                    calls[impl] = make_call(impl, x, scores, k, grad_y)
                times = time_interleaved(calls, device, args.repeat)
                rows = {}
                for impl, call in calls.items():
                    rows[impl] = {
                        "ms": statistics.median(times[impl]),
                        "min_ms": min(times[impl]),
                        "times_ms": times[impl],
                        "peak_mib": peak_extra_mib(call, device),
                    }
                del calls
                key = "ms" if args.stat == "median" else "min_ms"
                for impl, r in rows.items():
                    ref = rows.get("reference", {}).get(key)
                    flo = rows.get("floor", {}).get(key)
                    r.update(
                        n=n, k=k, D=D, mode=mode, impl=impl, stat=args.stat,
                        speedup_vs_reference=(ref / r[key]) if ref else None,
                        times_floor=(r[key] / flo) if flo else None,
                    )
                    results.append(r)
                print_block(n, k, D, mode, rows, args.stat)
    meta["loadavg_end"] = loadavg()
    print(f"# loadavg_end={meta['loadavg_end']}")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"meta": meta, "results": results}, fh, indent=1)
        print(f"# wrote {args.json}")
    return results


def print_block(n, k, D, mode, rows, stat):
    print(f"\nB x {n} -> {k}, D={D}, {mode} (ratios from the {stat})")
    print(f"{'impl':<10} {'median ms':>10} {'min ms':>9} {'x faster than ref':>18} {'x floor':>8} "
          f"{'peak MiB':>9}")
    for impl, r in rows.items():
        sp = f"{r['speedup_vs_reference']:.1f}" if r.get("speedup_vs_reference") else "-"
        fl = f"{r['times_floor']:.2f}" if r.get("times_floor") else "-"
        mem = f"{r['peak_mib']:.0f}" if r["peak_mib"] is not None else "n/a"
        print(f"{impl:<10} {r['ms']:>10.1f} {r['min_ms']:>9.1f} {sp:>18} {fl:>8} {mem:>9}")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
