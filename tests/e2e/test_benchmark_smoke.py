"""Smoke runs of the benchmark commands as a user types them (``python -m benchmarks``,
``python -m benchmarks.topk``): tiny models and shapes, every table, and the JSON they write has
the rows the tables are built from."""
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
MODELS = ("pyramidion", "blockwise", "full", "led")


def run_module(module, *flags, timeout):
    """``python -m module flags`` from the repository root (where `benchmarks` is importable)."""
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    proc = subprocess.run([sys.executable, "-m", module, *flags], cwd=ROOT, capture_output=True,
                          text=True, timeout=timeout, env=env)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


def test_model_benchmark_quick(tmp_path):
    out = tmp_path / "bench.json"
    flags = ["--quick", "--threads", "1", "--lengths", "128",
             "--tables", "train,encoder,generate,decoder", "--models", ",".join(MODELS),
             "--repeat", "1", "--warmup", "0", "--json", str(out), "--plots", str(tmp_path)]
    proc = run_module("benchmarks", *flags, timeout=240)
    data = json.loads(out.read_text())
    rows = data["results"]
    assert data["meta"]["quick"] and data["meta"]["machine"]["cores"]
    assert data["meta"]["command"].startswith("python -m benchmarks --quick")

    def row(table, model, **kw):
        found = [r for r in rows if r["table"] == table and r["model"] == model
                 and all(r.get(k) == v for k, v in kw.items())]
        assert len(found) == 1, (table, model, kw, found)
        return found[0]

    for model in MODELS:
        for table, kw in (("train", {"length": 128}), ("encoder", {"length": 128}),
                          ("generate", {"length": 256, "beam": 2})):
            r = row(table, model, **kw)
            if model == "led" and r.get("skipped"):
                assert "transformers" in r["skipped"]  # optional dependency, said so
                continue
            assert not r.get("error"), r
            assert r["min_s"] > 0 and r["times_s"]
            assert r["paired_min_s"] > 0, r  # also timed side by side with the other models
            if table == "train":
                assert r["peak_mib"] > 0 and r["step_peak_mib"] is not None
            if table == "generate":
                # fairseq: out_len tokens + eos; LED: out_len + 1 forced new tokens
                assert r["decoder_steps"] == 9
    for width in (16, 256):
        r = row("decoder", "pyramidion", length=width, beam=2)
        assert r["per_token_s"] > 0 and r["per_token_no_proj_s"] > 0
        # the decoder read rows_per_source from the encoder output: k/v once per source
        assert r["shared_kv"]
    assert (tmp_path / "benchmark_train.png").stat().st_size > 0
    assert (tmp_path / "benchmark_generate.png").stat().st_size > 0
    assert "Training step" in proc.stdout and "blockwise / pyramidion" in proc.stdout

    # the JSON alone prints the same tables again (what BENCHMARKS.md's --from-json relies on)
    again = run_module("benchmarks", "--from-json", str(out), "--plots", str(tmp_path),
                       timeout=120)
    assert "### Decoder alone" in again.stdout
    assert again.stdout in proc.stdout


def test_topk_benchmark_small(tmp_path):
    out = tmp_path / "topk.json"
    proc = run_module("benchmarks.topk", "--shapes", "256:64", "--dims", "32", "--batch", "2",
                      "--repeat", "2", "--threads", "1", "--stat", "min", "--json", str(out),
                      timeout=120)
    data = json.loads(out.read_text())
    assert data["meta"]["command"].startswith("python -m benchmarks.topk --shapes 256:64")
    assert data["meta"]["batch"] == 2 and data["meta"]["stat"] == "min"
    rows = {(r["impl"], r["mode"]): r for r in data["results"]}
    impls = ("reference", "torch", "hard_topk", "floor")  # triton needs --device cuda
    assert set(rows) == {(i, m) for i in impls for m in ("fwd", "fwdbwd")}
    for (impl, mode), r in rows.items():
        assert (r["n"], r["k"], r["D"], r["stat"]) == (256, 64, 32, "min")
        assert len(r["times_ms"]) == 2 and 0 < r["min_ms"] <= r["ms"]
        assert r["min_ms"] == min(r["times_ms"])
        # the ratios divide the chosen statistic (min) by the reference's and the floor's
        ref, floor = rows[("reference", mode)]["min_ms"], rows[("floor", mode)]["min_ms"]
        assert abs(r["speedup_vs_reference"] - ref / r["min_ms"]) < 1e-9
        assert abs(r["times_floor"] - r["min_ms"] / floor) < 1e-9
        assert r["peak_mib"] is None or r["peak_mib"] >= 0
    assert "B x 256 -> 64, D=32, fwdbwd (ratios from the min)" in proc.stdout
    assert "# triton skipped" in proc.stdout


def test_selection_benchmark_small(tmp_path):
    """``python -m benchmarks.selection`` end to end through fairseq-train and fairseq-generate:
    two options, one seed, two compressions, a few updates; the unpooled model trains once and
    stands in both tables; rows, table and plot written, and a second run with the same --out
    reuses the rows it has."""
    out = tmp_path / "selection"
    flags = ["--options", "topk-st", "none", "--seeds", "1", "--updates", "2", "--train-docs",
             "24", "--test-docs", "4", "--length", "128", "--compression", "8", "16", "--spans", "2",
             "--span-length", "2", "--out", str(out), "--jobs", "1"]
    proc = run_module("benchmarks.selection", *flags, timeout=600)
    rows = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert sorted((r["option"], r["compression"]) for r in rows) == [
        ("none", 1), ("topk-st", 8), ("topk-st", 16)]
    for row in rows:
        assert 0.0 <= row["recall"] <= 1.0 and 0.0 <= row["token_accuracy"] <= 1.0
        assert row["train_seconds"] > 0 and row["updates"] == 2 and row["task"] == "spans"
    assert "--topk-straight-through" in next(r for r in rows if r["option"] == "topk-st")["flags"]
    assert proc.stdout.count("| topk-st | 1 |") == 2 and (out / "table.md").exists()
    assert proc.stdout.count("| none | 1 |") == 2
    assert (out / "quality.png").stat().st_size > 0
    again = run_module("benchmarks.selection", *flags, timeout=300)
    assert "0 runs to do (3 done before)" in again.stderr


def test_hf_generate_quick(tmp_path):
    """benchmarks/hf_generate.py: the export, fairseq and LED decode the same number of steps, the
    export gives fairseq's tokens, and --profile writes one cProfile file per path."""
    out = tmp_path / "hf.json"
    common = ["--family", "quick", "--length", "256", "--beam", "2", "--out-len", "4",
              "--threads", "1"]
    run_module("benchmarks.hf_generate", *common, "--repeat", "1", "--json", str(out),
               timeout=300)
    data = json.loads(out.read_text())
    assert data["decoder_steps"] == {"fairseq": 5, "hf": 5, "led": 5}
    assert data["same_tokens"] is True
    assert set(data["min_seconds"]) == {"fairseq", "hf", "led"}
    assert data["hf_over_fairseq"] > 0 and data["led_over_hf"] > 0
    proc = run_module("benchmarks.hf_generate", *common, "--no-led", "--profile",
                      str(tmp_path / "prof"), timeout=300)
    assert sorted(p.name for p in (tmp_path / "prof").iterdir()) == ["fairseq.prof", "hf.prof"]
    assert "by own time" in proc.stderr
