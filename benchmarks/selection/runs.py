"""One benchmark run: fairseq-train one option with one seed, fairseq-generate the test split,
score what it wrote.

    data  = binarize(text_dir, bin_dir)                       # fairseq-preprocess, once per task
    row   = train_and_score(Run(option, flags, seed, ...), data, work_dir)

Everything goes through fairseq's own commands (the ``fairseq-*`` scripts of the venv running this
module), as a user would run them: ``--user-dir deep_pyramidion``, one CPU thread per process.
"""
from __future__ import annotations

import json
import logging
import os
import re
import shutil
import subprocess
import time
from dataclasses import asdict, dataclass, field
from typing import Dict, List, Sequence

from benchmarks.common import console_script
from deep_pyramidion.eval.generate_output import read_generate_output
from deep_pyramidion.eval.rouge import score_pairs

logger = logging.getLogger("benchmarks.selection")

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
USER_DIR = os.path.join(REPO, "deep_pyramidion")


def _env() -> Dict[str, str]:
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    env["PYTHONPATH"] = REPO + os.pathsep + env.get("PYTHONPATH", "")
    return env


def _run(argv: List[str], log_path: str) -> float:
    """Run a command with its output in ``log_path``; seconds of wall time. Raises with the log's
    tail when it fails."""
    start = time.perf_counter()
    with open(log_path, "w", encoding="utf-8") as log:
        proc = subprocess.run(argv, stdout=log, stderr=subprocess.STDOUT, env=_env())
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        with open(log_path, encoding="utf-8", errors="replace") as log:
            tail = log.read()[-3000:]
        raise RuntimeError(f"{os.path.basename(argv[0])} failed ({proc.returncode}); {log_path}:\n{tail}")
    return seconds


def binarize(text_dir: str, bin_dir: str, vocab: int) -> str:
    """fairseq-preprocess of the task's text (one joined dictionary of the ``vocab`` most
    frequent words; the rest is <unk>); reused when ``bin_dir`` is complete."""
    if os.path.exists(os.path.join(bin_dir, "test.src-tgt.tgt.idx")):
        return bin_dir
    shutil.rmtree(bin_dir, ignore_errors=True)
    os.makedirs(bin_dir)
    _run([console_script("fairseq-preprocess"), "--source-lang", "src", "--target-lang", "tgt",
          "--trainpref", os.path.join(text_dir, "train"), "--validpref", os.path.join(text_dir, "valid"),
          "--testpref", os.path.join(text_dir, "test"), "--destdir", bin_dir, "--joined-dictionary",
          "--nwordssrc", str(vocab), "--workers", "1"], os.path.join(bin_dir, "preprocess.log"))
    return bin_dir


@dataclass
class Run:
    option: str                   # the row's name
    flags: List[str]              # its fairseq flags (pooling, schedule)
    seed: int
    length: int                   # source tokens (without eos)
    updates: int
    compression: int
    max_len: int = 250            # generation's length limit (the targets' longest, and some)
    train_flags: List[str] = field(default_factory=list)


# The model of every row: pyramidion_tiny (d=64, 2+2 layers, 4 heads, blockwise chunks of 32),
# pre-norm, no dropout, Adam at a constant 3e-3 after 50 warm-up updates, 16 documents a batch.
# Only the pooling differs between rows. (Calibrated with benchmarks/selection/diagnose.py: the
# unpooled model starts copying spans after ~600 updates at 512 tokens.)
MODEL_FLAGS = [
    "--task", "translation", "--arch", "pyramidion_tiny", "--source-lang", "src",
    "--target-lang", "tgt", "--share-all-embeddings", "--encoder-normalize-before",
    "--decoder-normalize-before", "--dropout", "0.0", "--attention-dropout", "0.0",
    "--criterion", "cross_entropy", "--optimizer", "adam", "--adam-betas", "(0.9, 0.98)",
    "--lr", "3e-3", "--lr-scheduler", "fixed", "--warmup-updates", "50", "--clip-norm", "1.0",
    "--batch-size", "16", "--max-target-positions", "256", "--num-workers", "0",
    "--disable-validation", "--no-epoch-checkpoints", "--no-save-optimizer-state",
    "--log-format", "simple", "--log-interval", "50", "--dataset-impl", "mmap",
]


def train_and_score(run: Run, data_bin: str, text_dir: str, work_dir: str) -> Dict:
    """Train, generate greedily on the test split, score; the row of the results table."""
    os.makedirs(work_dir, exist_ok=True)
    save_dir = os.path.join(work_dir, "checkpoints")
    train_seconds = _run([
        console_script("fairseq-train"), data_bin, "--user-dir", USER_DIR, *MODEL_FLAGS,
        "--max-source-positions", str(run.length + 1), "--max-update", str(run.updates),
        "--seed", str(run.seed), "--save-dir", save_dir, *run.flags, *run.train_flags,
    ], os.path.join(work_dir, "train.log"))
    train_loss = last_train_loss(os.path.join(work_dir, "train.log"))
    generate_log = os.path.join(work_dir, "generate.txt")
    generate_seconds = _run([
        console_script("fairseq-generate"), data_bin, "--user-dir", USER_DIR, "--task", "translation",
        "--source-lang", "src", "--target-lang", "tgt", "--gen-subset", "test",
        "--path", os.path.join(save_dir, "checkpoint_last.pt"), "--beam", "1",
        "--max-len-a", "0", "--max-len-b", str(run.max_len), "--batch-size", "16",
        "--max-source-positions", str(run.length + 1), "--dataset-impl", "mmap",
    ], generate_log)
    with open(os.path.join(text_dir, "needed.jsonl"), encoding="utf-8") as fh:
        needed = [json.loads(line) for line in fh]
    gen = read_generate_output(generate_log, expected=len(needed))
    hyps = [gen.hyps[i] for i in range(len(needed))]
    refs = [gen.refs[i] for i in range(len(needed))]
    row = asdict(run)
    row.update(score(hyps, refs, needed))
    row.update(train_seconds=round(train_seconds, 1), generate_seconds=round(generate_seconds, 1),
               train_loss=train_loss)
    shutil.rmtree(save_dir, ignore_errors=True)   # checkpoints are large; the logs stay
    return row


def score(hyps: Sequence[str], refs: Sequence[str], needed: Sequence[Sequence[str]]) -> Dict:
    """Exact recall of the needed pieces (a piece counts when the hypothesis holds it word for
    word; the reference side is the binarized target, so <unk> counts as a word on both sides),
    position-wise token accuracy (the target's i-th word, separators aside, is the hypothesis'
    i-th word: partial credit while exact pieces are still rare), and ROUGE F1 against the
    target."""
    found = total = right = words = 0
    for hyp, ref, pieces in zip(hyps, refs, needed):
        padded = f" {hyp} "
        for piece in _pieces_as_in(ref, pieces):
            total += 1
            found += f" {piece} " in padded
        # position-wise: the target's i-th word (separators aside) is the hypothesis' i-th word
        hyp_words, ref_words = hyp.split(), ref.split()
        for i, word in enumerate(ref_words):
            if word not in SEPARATORS:
                words += 1
                right += i < len(hyp_words) and hyp_words[i] == word
    rouge = score_pairs(list(hyps), list(refs), metrics=("rouge1", "rouge2", "rougeL"))
    mean = {m: 100 * sum(f for _, _, f in rows) / max(len(rows), 1) for m, rows in rouge.items()}
    return {"recall": round(found / max(total, 1), 4),
            "token_accuracy": round(right / max(words, 1), 4),
            **{m: round(v, 2) for m, v in mean.items()}}


def _pieces_as_in(ref: str, pieces: Sequence[str]) -> List[str]:
    """The needed pieces as the reference line shows them (its words after binarization: a word
    out of the dictionary is <unk> there, and in any hypothesis)."""
    parts = [p.strip() for p in re.split(r" \| | <q> ", ref)]
    return parts if len(parts) == len(pieces) else list(pieces)


SEPARATORS = {"|", "<q>"}
_LOSS = re.compile(r"\| train \| .*?\bloss (\d+(?:\.\d+)?)")


def last_train_loss(log_path: str):
    """fairseq's end-of-epoch training loss (base 2), the last one logged."""
    value = None
    with open(log_path, encoding="utf-8", errors="replace") as fh:
        for line in fh:
            match = _LOSS.search(line)
            if match:
                value = float(match.group(1))
    return value
