"""Pre-move checkpoints (current main) + their expected outputs, for the layout-move regression test."""
import json, os, random, subprocess, sys, shutil
from pathlib import Path
import torch

ROOT = Path("/work/main")
OUT = ROOT / "tests" / "data" / "premove"
VENV = ROOT / ".venv" / "bin"
work = Path("/tmp/premove/work"); shutil.rmtree(work, ignore_errors=True); work.mkdir(parents=True)
rng = random.Random(0)
raw = work / "raw"; raw.mkdir()
for split, size in (("train", 48), ("valid", 8)):
    with open(raw / f"{split}.src", "w") as s, open(raw / f"{split}.tgt", "w") as t:
        for _ in range(size):
            n = rng.randint(20, 150)
            words = [f"w{rng.randrange(40)}" for _ in range(n)]
            s.write(" ".join(words) + "\n"); t.write(" ".join(words[:6]) + "\n")
binp = work / "bin"
subprocess.run([str(VENV / "fairseq-preprocess"), "--source-lang", "src", "--target-lang", "tgt",
                "--trainpref", str(raw / "train"), "--validpref", str(raw / "valid"), "--destdir", str(binp),
                "--joined-dictionary", "--dataset-impl", "mmap", "--workers", "1"], check=True,
               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
SIZES = ["--encoder-embed-dim", "16", "--encoder-ffn-embed-dim", "32", "--encoder-attention-heads", "2",
         "--decoder-embed-dim", "16", "--decoder-ffn-embed-dim", "32", "--decoder-attention-heads", "2",
         "--encoder-layers", "2", "--decoder-layers", "2", "--share-all-embeddings"]
CONFIGS = {
    "topk": ["--chunk-size", "16", "--enc-layers-and-token-width", "{0: 32, 1: 8}"],
    "memory_seqpool": ["--encoder-attention", "blockwise-memory", "--memory-compression", "conv",
                       "--chunk-size", "16", "--encoder-pooling", "seqpool",
                       "--enc-layers-and-token-width", "{0: 32, 1: 8}",
                       "--criterion", "label_smoothed_cross_entropy_with_reconstruction"],
    "strided_hard_ffn": ["--encoder-attention", "strided", "--encoder-pooling", "hard-topk",
                         "--encoder-pooling-arch", "ffn", "--enc-layers-and-token-width", "{0: 32, 1: 8}"],
    "fixed_mostused": ["--encoder-attention", "fixed", "--encoder-pooling", "most-used",
                       "--enc-layers-and-token-width", "{1: 16}", "--attention-stride", "8"],
    "dilated_legacy": ["--use-sparse-attn", "pooler_no_block", "--encoder-pooling", "dilated-conv",
                       "--enc-layers-and-token-width", "{0: 24, 1: 8}"],
}
OUT.mkdir(parents=True, exist_ok=True)
shutil.copy(binp / "dict.src.txt", OUT / "dict.src.txt")
shutil.copy(binp / "dict.tgt.txt", OUT / "dict.tgt.txt")
for name, flags in CONFIGS.items():
    save = work / name
    crit = [] if "--criterion" in flags else ["--criterion", "label_smoothed_cross_entropy"]
    cmd = [str(VENV / "fairseq-train"), str(binp), "--user-dir", str(ROOT / "deep_pyramidion"), "--task", "translation",
           "--arch", "pyramidion_tiny", *SIZES, *flags, *crit, "--label-smoothing", "0.1",
           "--optimizer", "adam", "--lr", "0.003", "--max-tokens", "4000", "--max-update", "150",
           "--max-source-positions", "256", "--max-target-positions", "64", "--truncate-source",
           "--save-dir", str(save), "--no-epoch-checkpoints", "--cpu", "--seed", "3", "--num-workers", "0",
           "--log-format", "simple", "--log-interval", "10", "--no-save-optimizer-state",
           "--no-last-checkpoints", "--ddp-backend", "legacy_ddp"]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode: print(r.stdout[-2000:], r.stderr[-3000:]); sys.exit(1)
    shutil.copy(save / "checkpoint_best.pt", OUT / f"{name}.pt")
    print(name, os.path.getsize(OUT / f"{name}.pt"))
