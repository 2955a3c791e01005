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
was allocated before it (benchmarks/common.py says how it is read on the CPU and on CUDA); "n/a"
where /proc is not available.

Examples
  python -m benchmarks.topk                                      # all shapes, CPU, float32
  python -m benchmarks.topk --shapes 8192:512 --dims 512 --repeat 5
  python -m benchmarks.topk --device cuda --dtype bfloat16 --json bench.json
"""
from __future__ import annotations

import argparse
import statistics
import sys

import torch

from benchmarks.common import cpu_name, loadavg, peak_extra_mib, side_by_side, write_json
from deep_pyramidion.topk import successive_halving_topk

IMPLS = ("reference", "torch", "triton", "hard_topk", "floor")
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
COMMAND = "python -m benchmarks.topk"


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog=COMMAND, description=__doc__.split("\n")[0])
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


def block(impls, x0, s0, k, mode, args, device, dtype, gen):
    """One block of the table (one shape, D and mode): every candidate timed, taking turns, and
    its peak memory -> {impl: row}"""
    need_grad = mode == "fwdbwd"
    B, _, D = x0.shape
    calls = {}
    for impl in impls:
        x = x0.clone().requires_grad_(need_grad)
        scores = s0.clone().requires_grad_(need_grad)
        grad_y = None
        if need_grad:  # the gradient of y: (B, k, D), or (B, D) for the floor's sum
            out_shape = (B, D) if impl == "floor" else (B, k, D)
            grad_y = torch.randn(*out_shape, generator=gen).to(device, dtype)
        calls[impl] = make_call(impl, x, scores, k, grad_y)

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    # one warm-up each (first-touch allocations, Triton compilation, caches), then fixed turns
    times = side_by_side(list(calls.values()), sync, warmup=1, repeat=args.repeat, rotate=False)
    rows = {}
    for (impl, call), t in zip(calls.items(), times):
        ms = [v * 1e3 for v in t]
        rows[impl] = {"ms": statistics.median(ms), "min_ms": min(ms), "times_ms": ms,
                      "peak_mib": peak_extra_mib(call, device)}
    return rows


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

    meta = {
        "torch": torch.__version__,
        "device": str(device) if device.type != "cuda" else torch.cuda.get_device_name(device),
        "cpu": cpu_name(),
        "threads": torch.get_num_threads(),
        "dtype": args.dtype,
        "batch": args.batch,
        "repeat": args.repeat,
        "stat": args.stat,
        # the CPU may be shared: the 1/5/15-minute load averages say how busy it was
        "loadavg_start": loadavg(),
        "command": " ".join([COMMAND, *(argv if argv is not None else sys.argv[1:])]),
    }
    print("# " + ", ".join(f"{k}={v}" for k, v in meta.items()))

    results = []
    gen = torch.Generator().manual_seed(0)
    key = "ms" if args.stat == "median" else "min_ms"
    for n, k in shapes:
        for D in dims:
            x0 = torch.randn(args.batch, n, D, generator=gen).to(device=device, dtype=dtype)
            s0 = (torch.sigmoid(torch.randn(args.batch, n, generator=gen)) + 1e-5).to(device)
            for mode in modes:
                rows = block(impls, x0, s0, k, mode, args, device, dtype, gen)
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
        write_json(args.json, meta, results)
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
