"""What every benchmark table measures the same way: time, memory, load, the machine, the process
a configuration runs in, and the JSON it is written to.

The tables differ in what they run, not in how it is measured; keeping the measuring here means a
figure in one table and a figure in another are comparable (same statistic, same memory reading,
same load record), and a fix to a probe reaches every table at once.

Memory (Linux /proc and glibc on the CPU; the CUDA allocator's counters on a GPU):
  CPU   the resident-set high-water mark (VmHWM of /proc/self/status), reset to the current
        resident size through /proc/self/clear_refs after glibc's malloc_trim(0) has handed freed
        heap pages back (otherwise memory the allocator reuses would not show). It counts resident
        pages, not tensor bytes: close to the peak of live allocations, give or take allocator
        slack; None where /proc is not available.
  CUDA  torch.cuda.max_memory_allocated() after reset_peak_memory_stats(), minus the allocation
        before the run (tensors only, not the caching allocator's reserve).
"""
from __future__ import annotations

import ctypes
import json
import logging
import multiprocessing as mp
import os
import platform
import statistics
import subprocess
import sys
import time
import traceback
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Sequence


# ----------------------------------------------------------------------------- /proc readings
def proc_kib(field: str) -> Optional[int]:
    """A ``/proc/self/status`` field in KiB (``VmRSS``, ``VmHWM``); None where /proc is missing."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def malloc_trim() -> None:
    """Give freed heap pages back to the OS (glibc), so memory a run reuses counts again."""
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def console_script(name: str) -> str:
    """An installed command (``fairseq-train``, ``pyramidion-convert``) of the venv running this
    python, else the bare name for PATH: a benchmark runs the commands of its own environment."""
    path = os.path.join(os.path.dirname(sys.executable), name)
    return path if os.path.exists(path) else name


def loadavg() -> str:
    """The 1/5/15-minute load averages: on a shared CPU they say how disturbed a figure may be."""
    try:
        return "/".join(f"{v:.2f}" for v in os.getloadavg())
    except OSError:
        return "n/a"


# ----------------------------------------------------------------------------- memory
class MemoryProbe:
    """The peak of one run above the memory resting before it, and the process's own peak
    (module docstring). ``before_run`` resets the high-water mark, so the process peak up to then
    is remembered first (``note_process_peak``)."""

    def __init__(self, device):
        import torch

        self.device = torch.device(device)
        self.cuda = self.device.type == "cuda"
        self.rest = None
        self.process_peak = 0
        self.process_hwm = 0

    def before_run(self) -> None:
        import torch

        if self.cuda:
            torch.cuda.synchronize(self.device)
            self.rest = torch.cuda.memory_allocated(self.device)
            self.process_peak = torch.cuda.max_memory_allocated(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            return
        malloc_trim()
        self.rest = None
        try:
            with open("/proc/self/clear_refs", "w") as fh:
                fh.write("5")  # VmHWM := VmRSS
            self.rest = proc_kib("VmRSS")
        except OSError:
            pass

    def after_run(self):
        """-> (process peak MiB, run peak above resting MiB); either None where unknown."""
        import torch

        if self.cuda:
            torch.cuda.synchronize(self.device)
            peak = torch.cuda.max_memory_allocated(self.device)
            return max(peak, self.process_peak) / 2**20, (peak - self.rest) / 2**20
        hwm = proc_kib("VmHWM")
        process_peak = max(hwm or 0, self.process_hwm or 0)
        step = (hwm - self.rest) / 1024 if (hwm is not None and self.rest is not None) else None
        return process_peak / 1024 if process_peak else None, step

    def note_process_peak(self) -> None:
        if not self.cuda:
            self.process_hwm = max(proc_kib("VmHWM") or 0, self.process_hwm or 0)


def peak_extra_mib(call: Callable[[], object], device) -> Optional[float]:
    """Peak memory of one call above the memory in use before it, MiB (never negative)."""
    probe = MemoryProbe(device)
    probe.before_run()
    call()
    _, extra = probe.after_run()
    return None if extra is None else max(0.0, extra)


# ----------------------------------------------------------------------------- timing
def time_runs(fn, sync, warmup: int, repeat: int, probe: MemoryProbe) -> Dict:
    """One configuration alone: fn warmup times, then repeat timed times; memory is probed
    around the last timed run (by then caches and optimizer state exist)."""
    for _ in range(warmup):
        fn()
    sync()
    times = []
    for i in range(repeat):
        last = i == repeat - 1
        if last:
            probe.note_process_peak()
            probe.before_run()
        t0 = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - t0)
    peak, step_peak = probe.after_run()
    return {"times_s": times, "min_s": min(times), "median_s": statistics.median(times),
            "peak_mib": peak, "step_peak_mib": step_peak}


def side_by_side(fns: Sequence[Callable], sync, warmup: int, repeat: int,
                 rotate: bool = True) -> List[List[float]]:
    """Times in s of candidates that take turns, one list per candidate: warmup untimed runs of
    each, then repeat rounds in which every candidate runs once. A change in the load of a shared
    machine then hits all candidates alike, so their ratios hold although their times move.
    rotate: the candidate that starts a round moves on by one each round (a, b, c / b, c, a / ...),
    so that none always runs right after the same neighbour."""
    for _ in range(warmup):
        for fn in fns:
            fn()
            sync()
    times = [[] for _ in fns]
    for r in range(repeat):
        for j in range(len(fns)):
            i = (r + j) % len(fns) if rotate else j
            t0 = time.perf_counter()
            fns[i]()
            sync()
            times[i].append(time.perf_counter() - t0)
    return times


@dataclass
class TorchEnv:
    """Where the models run: the device, a synchronisation point for timing, and the autocast
    context every forward runs under (bf16 on CUDA, none on the CPU)."""

    device: object
    sync: Callable[[], None]
    autocast: Callable[[], object]


def torch_env(device_name: str, threads: Optional[int]) -> TorchEnv:
    import torch

    logging.disable(logging.WARNING)
    if threads:
        torch.set_num_threads(threads)
    cuda = device_name == "cuda"

    def sync():
        if cuda:
            torch.cuda.synchronize()

    autocast = (lambda: torch.autocast("cuda", dtype=torch.bfloat16)) if cuda else nullcontext
    return TorchEnv(torch.device(device_name), sync, autocast)


# ----------------------------------------------------------------------------- machine facts
def cpu_name() -> str:
    """The CPU model as lscpu names it (else /proc/cpuinfo, else platform)."""
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10).stdout
        for line in out.splitlines():
            if line.startswith("Model name:"):
                return line.split(":", 1)[1].strip()
    except (OSError, subprocess.SubprocessError):
        pass
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_info(device: str) -> Dict:
    """What a reader needs to compare a figure with their own machine's."""
    import torch

    info = {"cpu": cpu_name(), "cores": os.cpu_count(), "torch": torch.__version__,
            "torch_threads": torch.get_num_threads(), "python": platform.python_version()}
    try:
        import fairseq

        info["fairseq"] = fairseq.__version__
    except ImportError:
        pass
    try:
        with open("/proc/meminfo") as fh:
            info["mem_total_gib"] = round(int(fh.readline().split()[1]) / 2**20, 1)
    except OSError:
        pass
    if device == "cuda" and torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


# ----------------------------------------------------------------------------- processes
def _child(func, payload, args, conn):
    try:
        conn.send(("ok", func(payload, args)))
    except Exception as exc:  # noqa: BLE001 - reported in the row
        oom = "can't allocate memory" in str(exc) or "out of memory" in str(exc).lower()
        conn.send(("oom" if oom else "error",
                   f"{type(exc).__name__}: {str(exc)[:300]}\n{traceback.format_exc()[-1500:]}"))
    finally:
        conn.close()


def call_forked(func, payload, args, *, timeout: float, in_process: bool = False):
    """func(payload, args) in a process forked from this one -> (result or None, error or None).

    Forked after the imports, so a configuration pays no import time and inherits no memory of
    the configurations before it; a crash, an out-of-memory kill or a run past ``timeout``
    seconds ends up as the error of its row instead of ending the benchmark. in_process: call
    func here instead (no isolation; memory figures then include earlier leftovers)."""
    if in_process:
        try:
            return func(payload, args), None
        except RuntimeError as exc:
            return None, f"{type(exc).__name__}: {str(exc)[:300]}"
    ctx = mp.get_context("fork")
    parent, child = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_child, args=(func, payload, args, child))
    proc.start()
    child.close()
    status, result = None, None
    if parent.poll(timeout):
        try:
            status, result = parent.recv()
        except EOFError:
            pass
    proc.join(5 if status else 0.1)
    if proc.is_alive():
        proc.kill()
        proc.join()
        if status is None:
            return None, f"timeout: stopped after {timeout:g} s (--timeout)"
    if status == "ok":
        return result, None
    if status in ("oom", "error"):
        return None, ("out of memory: " if status == "oom" else "") + result.splitlines()[0]
    code = proc.exitcode
    return None, (f"process killed by signal {-code} (out of memory?)" if code and code < 0
                  else f"process ended with code {code} and no result")


# ----------------------------------------------------------------------------- flags and JSON
def ints(text) -> List[int]:
    """A comma-separated flag of integers ("1024,2048")."""
    return [int(v) for v in str(text).split(",") if v.strip()]


def write_json(path: str, meta: Dict, results: List[Dict]) -> None:
    """{"meta": ..., "results": [...]}: the layout every benchmark JSON in docs/bench/ has, and
    the one --from-json reads back."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w") as fh:
        json.dump({"meta": meta, "results": results}, fh, indent=1)


def read_json(paths: Sequence[str]):
    """-> (rows, metas) merged from benchmark JSON files, in the order given."""
    rows, metas = [], []
    for path in paths:
        with open(path) as fh:
            data = json.load(fh)
        rows.extend(data["results"])
        metas.append(data["meta"])
    return rows, metas
