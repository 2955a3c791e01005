"""Smoke test of scripts/benchmark.py: tiny models, every table, the JSON has the expected rows."""
import json
import os
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "benchmark.py"
MODELS = ("pyramidion", "blockwise", "full", "led")


def test_benchmark_quick(tmp_path):
    out = tmp_path / "bench.json"
    argv = [sys.executable, str(SCRIPT), "--quick", "--threads", "1", "--lengths", "128",
            "--tables", "train,encoder,generate,decoder", "--models", ",".join(MODELS),
            "--repeat", "1", "--warmup", "0", "--json", str(out), "--plots", str(tmp_path)]
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=240, env=env)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    data = json.loads(out.read_text())
    rows = data["results"]
    assert data["meta"]["quick"] and data["meta"]["machine"]["cores"]

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
        assert r["shared_kv"]  # cross-attention keys/values once per source, as in beam search
    assert (tmp_path / "benchmark_train.png").stat().st_size > 0
    assert (tmp_path / "benchmark_generate.png").stat().st_size > 0
    assert "Training step" in proc.stdout and "blockwise / pyramidion" in proc.stdout
