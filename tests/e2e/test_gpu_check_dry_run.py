"""scripts/gpu_check.sh --dry-run: every step of the GPU check runs on the CPU with tiny sizes (the
Triton steps under Triton's interpreter) and writes the summary the GPU run writes, so the script
cannot rot between the runs on a machine with a GPU; and the budget stops steps that would not fit."""
import json

import pytest

from tests.support.paths import REPO
from tests.support.processes import run_process

STEPS = ["environment", "topk_kernels", "model_triton", "fairseq_train_bf16", "bench_topk_float32",
         "bench_topk_bfloat16", "bench_models"]


def run(*args):
    return run_process(["bash", REPO / "scripts" / "gpu_check.sh", *args], timeout=1200)


@pytest.mark.slow
def test_dry_run_runs_every_step_and_writes_the_summary(tmp_path):
    out = tmp_path / "gpu"
    proc = run("--dry-run", str(out))
    summary = json.loads((out / "summary.json").read_text())
    assert [s["name"] for s in summary["steps"]] == STEPS
    failed = {s["name"]: s.get("reason") for s in summary["steps"] if s["status"] != "ok"}
    assert not failed and proc.returncode == 0, (failed, proc.stdout[-2000:])
    steps = {s["name"]: s for s in summary["steps"]}
    assert steps["environment"]["figures"]["torch"]
    assert steps["topk_kernels"]["figures"].get("passed", 0) >= 1
    assert steps["model_triton"]["figures"].get("passed", 0) >= 3    # not skipped: interpreted
    train = steps["fairseq_train_bf16"]["figures"]
    assert train["loss_went_down"] and train["nonfinite_losses"] == 0 and train["tokens_per_second"]
    assert any(k.startswith("floor fwd") for k in steps["bench_topk_float32"]["figures"])
    assert any(k.startswith("train pyramidion") for k in steps["bench_models"]["figures"])
    text = (out / "summary.txt").read_text()
    assert all(name in text for name in STEPS)
    assert all(s["seconds"] > 0 for s in summary["steps"])


def test_budget_skips_what_does_not_fit(tmp_path):
    out = tmp_path / "gpu"
    proc = run("--dry-run", "--budget", "15", str(out))
    summary = json.loads((out / "summary.json").read_text())
    statuses = {s["name"]: s["status"] for s in summary["steps"]}
    assert statuses["environment"] == "ok"
    assert statuses["fairseq_train_bf16"] == "skipped" and statuses["bench_models"] == "skipped"
    assert "of the budget left" in next(s["reason"] for s in summary["steps"]
                                         if s["name"] == "bench_models")
    assert summary["elapsed_s"] < 60 and proc.returncode in (0, 1)
