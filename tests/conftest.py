"""Session fixtures: one generated corpus, binarized once, and one model trained once with the seed's
own training command line (tests/seed_commands.txt), shared by the CLI and batching tests."""
import os
import random
import shlex
import subprocess
from pathlib import Path

import pytest

import deep_pyramidion
from corpus import binarize, fairseq_cli, write_split

USER_DIR = os.path.dirname(deep_pyramidion.__file__)
SEED_COMMANDS = Path(__file__).with_name("seed_commands.txt")
# sizes only: everything else in the seed's command lines stays as written
SMALL_MODEL = [
    "--encoder-embed-dim", "32", "--encoder-ffn-embed-dim", "64", "--encoder-attention-heads", "2",
    "--decoder-embed-dim", "32", "--decoder-ffn-embed-dim", "64", "--decoder-attention-heads", "2",
]
# split name -> number of documents; test-1 .. test-16 are issue 8's partial-batch sizes
SPLIT_SIZES = {"train": 48, "dev-0": 13, "test-A": 6, "test-1": 1, "test-6": 6, "test-13": 13,
               "test-16": 16}
LONG_DOC_TOKENS = 3000  # test-A holds one document longer than the training --max-source-positions


def seed_command(section: str, data, ckpt=None, spm_model=None):
    """argv of the seed's ``[section]`` command with only data, user-dir, checkpoint, spm replaced."""
    text = SEED_COMMANDS.read_text()
    body = text.split(f"[{section}]\n", 1)[1].split("\n[", 1)[0]
    argv = shlex.split(body.replace("\\\n", " "))
    argv[0] = fairseq_cli(argv[0])
    out = []
    for i, arg in enumerate(argv):
        prev = argv[i - 1] if i else None
        if arg == "${DATA}":
            arg = str(data)
        elif prev == "--user-dir":
            arg = USER_DIR
        elif prev == "--path":
            arg = str(ckpt)
        elif arg == "${SPM_MODEL}":
            arg = str(spm_model)
        out.append(arg)
    return out


def run(argv, cwd, timeout=900, stdin=None):
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    env.pop("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", None)  # the safe loader stays on
    proc = subprocess.run(argv, cwd=cwd, env=env, input=stdin, capture_output=True, text=True,
                          timeout=timeout)
    if proc.returncode != 0:
        raise AssertionError(f"{argv[0]} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n"
                             f"{proc.stderr[-5000:]}")
    return proc.stdout + proc.stderr


def _summaries_corpus(root: Path, seed=0):
    """Documents of 100-1200 random words (so chunking and the 512-wide pooler both engage);
    the 'summary' is the first 10 words."""
    rng = random.Random(seed)
    raw = root / "raw"
    raw.mkdir(parents=True)
    for split, size in SPLIT_SIZES.items():
        pairs = []
        for i in range(size):
            n = LONG_DOC_TOKENS if (split == "test-A" and i == 0) else rng.randint(100, 1200)
            words = [f"w{rng.randrange(300)}" for _ in range(n)]
            pairs.append((words, words[:10]))
        write_split(raw, split, pairs)
    tests = [s for s in SPLIT_SIZES if s.startswith("test")]
    return raw, binarize(raw, root / "bin", test_splits=tests)


def _spm_model(raw: Path, out: Path) -> Path:
    import sentencepiece as spm

    spm.SentencePieceTrainer.train(
        input=str(raw / "train.src"), model_prefix=str(out / "spm"), vocab_size=200,
        hard_vocab_limit=False, minloglevel=2)
    return out / "spm.model"


@pytest.fixture(scope="session")
def seed_run(tmp_path_factory):
    """The seed's training command, small sizes, 2 updates; returns paths and the log."""
    root = tmp_path_factory.mktemp("seed")
    raw, data = _summaries_corpus(root)
    spm_model = _spm_model(raw, root)
    work = root / "work"
    work.mkdir()
    argv = seed_command("train", data) + SMALL_MODEL + ["--max-update", "2"]
    log = run(argv, cwd=work)
    return {"root": root, "raw": raw, "data": data, "spm": spm_model, "work": work,
            "ckpt": work / "results" / "checkpoint_last.pt", "train_argv": argv, "train_log": log}
