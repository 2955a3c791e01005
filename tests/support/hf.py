"""The Hugging Face adapter's test helpers: data binarized by the project's own pipeline, tiny
fairseq pyramidions built in-process, their exports, and a Python that cannot import
deep_pyramidion or fairseq (what a user with only torch + transformers has).

    data = sentencepiece_data(root)                  # DATA_BIN with spm.model, dict.src.txt
    built = tiny_pyramidion(data, "--encoder-pooling", "avg")
    out = export_built(built, data, root / "export")
    run_standalone(code, cwd)                        # python -c code, deep_pyramidion/fairseq blocked
"""
import os
import subprocess
import sys
from pathlib import Path

import torch

from tests.support.bart import write_splits
from tests.support.models import Built, build_model

# d=32, 2+2 layers; chunks of 16 and pooling 48 -> 16 tokens, so inputs of 100+ pieces (the
# splits' documents have 40-140 words) go through both poolers
TINY = ["--encoder-embed-dim", "32", "--encoder-ffn-embed-dim", "64",
        "--encoder-attention-heads", "2", "--decoder-embed-dim", "32",
        "--decoder-ffn-embed-dim", "64", "--decoder-attention-heads", "2",
        "--chunk-size", "16", "--enc-layers-and-token-width", "{0: 48, 1: 16}"]
# the BART family's conventions (learned positions, layernorm_embedding, GELU, post-norm, no
# embedding scale) at the tiny sizes: pyramidion_bart_base's own sizes overridden
BART_TINY = TINY + ["--encoder-layers", "2", "--decoder-layers", "2",
                    "--max-target-positions", "64"]
BLOCKER = '''"""Installed by the tests on PYTHONPATH: deep_pyramidion and fairseq cannot be imported."""
import sys


class _Blocked:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("deep_pyramidion", "fairseq", "fairseq_cli"):
            raise ModuleNotFoundError(f"{name} is blocked in this test")
        return None


sys.meta_path.insert(0, _Blocked())
'''


def sentencepiece_data(root: Path) -> Path:
    """Text splits (tests/support/bart.py: write_splits) -> preprocess.py's pipeline: a
    sentencepiece model of 200 pieces with the <q> marker, the dictionary, binarized splits."""
    from deep_pyramidion.data.binarize import preprocess

    text = root / "text"
    write_splits(text)
    out = root / "data-bin"
    preprocess(str(text), str(out), vocab_size=200)
    return out


def tiny_pyramidion(data: Path, *flags: str, arch: str = "pyramidion_tiny", seed: int = 0,
                    max_source_positions: int = 4096) -> Built:
    """A fairseq pyramidion of the tiny sizes (random weights from ``seed``), in eval mode."""
    base = BART_TINY if arch.startswith("pyramidion_bart") else TINY
    built = build_model(str(data), *base, *flags, arch=arch, seed=seed,
                        max_source_positions=max_source_positions)
    built.model.eval()
    # poolers' scorers start near zero in some families; give every parameter some spread so
    # that a mismatch in any of them shows in the outputs
    with torch.no_grad():
        g = torch.Generator().manual_seed(seed + 1)
        for name, p in built.model.named_parameters():
            if "poolers" in name or "compressors" in name:
                p.add_(torch.randn(p.shape, generator=g) * 0.5)
    return built


def export_built(built: Built, data: Path, out: Path, **kwargs) -> Path:
    from deep_pyramidion.fairseq_plugin.export_hf import export

    symbols = list(built.task.source_dictionary.symbols)
    export(built.args, built.model.state_dict(), symbols, str(out),
           {"sentencepiece_model": str(data / "spm.model")}, force=True, **kwargs)
    return out


def fairseq_train_tiny(data: Path, save: Path, max_source_positions: int, cwd: Path) -> Path:
    """A tiny pyramidion trained for 30 updates by fairseq-train (sources cut at
    ``max_source_positions``); returns its checkpoint_last.pt."""
    from tests.support.paths import USER_DIR, console_script
    from tests.support.processes import run

    run([console_script("fairseq-train"), str(data), "--user-dir", USER_DIR,
         "--task", "translation", "--arch", "pyramidion_tiny", "--source-lang", "src",
         "--target-lang", "tgt", "--share-all-embeddings", *TINY, "--dropout", "0",
         "--max-source-positions", str(max_source_positions), "--truncate-source",
         "--optimizer", "adam", "--lr", "0.003", "--max-tokens", "4096", "--max-update", "30",
         "--criterion", "label_smoothed_cross_entropy", "--dataset-impl", "mmap", "--cpu",
         "--save-dir", str(save), "--no-epoch-checkpoints", "--disable-validation",
         "--num-workers", "0", "--seed", "1"], cwd=cwd)
    return save / "checkpoint_last.pt"


def blocker_dir(root: Path) -> Path:
    folder = root / "blocker"
    folder.mkdir(exist_ok=True)
    (folder / "sitecustomize.py").write_text(BLOCKER)
    return folder


def run_standalone(code: str, root: Path, timeout: int = 300) -> str:
    """``python -c code`` in a fresh interpreter where deep_pyramidion and fairseq cannot be
    imported (a sitecustomize on PYTHONPATH blocks them), run from ``root`` (not the repository,
    whose folder would be importable); returns stdout, fails with stderr."""
    env = dict(os.environ, PYTHONPATH=str(blocker_dir(root)), OMP_NUM_THREADS="1",
               HF_MODULES_CACHE=str(root / "hf-modules"), HF_HUB_OFFLINE="1",
               TRANSFORMERS_VERBOSITY="error")
    proc = subprocess.run([sys.executable, "-c", code], cwd=root, env=env, capture_output=True,
                          text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stderr[-4000:]
    return proc.stdout
