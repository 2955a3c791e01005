"""scripts/hf_finetune.py (a Hugging Face BART -> from_bart -> Seq2SeqTrainer -> a standalone
folder) followed by scripts/hf_summarize.py in a Python where deep_pyramidion and fairseq cannot be
imported: one summary per document of test-A, and the usage errors of hf_summarize.py."""
import json
import os
import subprocess
import sys

import pytest

from tests.support.bart import SIZES, make_hf_bart, write_splits
from tests.support.hf import blocker_dir
from tests.support.paths import SCRIPTS

pytest.importorskip("accelerate")


def standalone_env(root):
    return dict(os.environ, PYTHONPATH=str(blocker_dir(root)), OMP_NUM_THREADS="1",
                HF_MODULES_CACHE=str(root / "hf-modules"), HF_HUB_OFFLINE="1")


def test_finetune_then_summarize_with_transformers_alone(tmp_path):
    source = make_hf_bart(tmp_path)
    sizes = write_splits(tmp_path / "text")
    out = tmp_path / "tuned"
    proc = subprocess.run(
        [sys.executable, str(SCRIPTS / "hf_finetune.py"), "--bart", str(source),
         "--text", str(tmp_path / "text"), "--out", str(out),
         "--max-source-positions", str(6 * SIZES["positions"]), "--max-steps", "30",
         "--batch-size", "4", "--lr", "1e-3", "--cpu"],
        capture_output=True, text=True, timeout=900, env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "dev-0 loss" in proc.stderr
    config = json.loads((out / "config.json").read_text())
    assert config["model_type"] == "pyramidion" and "auto_map" in config
    assert "summarization" in config["custom_pipelines"]
    assert (out / "pipeline_pyramidion.py").is_file()
    assert json.loads((out / "generation_config.json").read_text())["num_beams"] == 4

    summarize = subprocess.run(
        [sys.executable, str(SCRIPTS / "hf_summarize.py"), "--model", str(out), "--beam", "2",
         "--max-new-tokens", "12", str(tmp_path / "text" / "test-A.src")],
        capture_output=True, text=True, timeout=600, cwd=tmp_path, env=standalone_env(tmp_path))
    assert summarize.returncode == 0, summarize.stderr[-3000:]
    lines = summarize.stdout.split("\n")
    assert lines[-1] == "" and len(lines) - 1 == sizes["test-A"]
    assert all(line.strip() for line in lines[:-1])


def test_summarize_refuses_an_empty_line_before_loading(tmp_path):
    docs = tmp_path / "docs.txt"
    docs.write_text("a document\n\nanother\n")
    proc = subprocess.run([sys.executable, str(SCRIPTS / "hf_summarize.py"), "--model",
                           str(tmp_path / "missing"), str(docs)], capture_output=True, text=True,
                          timeout=120, cwd=tmp_path, env=standalone_env(tmp_path))
    assert proc.returncode == 1
    assert proc.stderr.strip() == f"error: {docs}:2: empty line; every line must hold one document"
