"""Small generated corpora, binarized with fairseq-preprocess, for tests that run fairseq itself.

Split names follow the seed's command lines: ``train``, ``dev-0``, ``test-A``.
"""
import random
from pathlib import Path

from tests.support.fairseq_runs import LONG_DOC_TOKENS, SPLIT_SIZES
from tests.support.paths import console_script as fairseq_cli
from tests.support.processes import run

SPLITS = ("train", "dev-0", "test-A")


def write_split(raw: Path, split: str, pairs):
    with open(raw / f"{split}.src", "w") as src, open(raw / f"{split}.tgt", "w") as tgt:
        for source, target in pairs:
            src.write(" ".join(source) + "\n")
            tgt.write(" ".join(target) + "\n")


def binarize(raw: Path, out: Path, test_splits=("test-A",), workers: int = 1) -> Path:
    """fairseq-preprocess with a joined dictionary; subsets renamed to train/dev-0/<test splits>."""
    out.mkdir(parents=True, exist_ok=True)
    cmd = [
        fairseq_cli("fairseq-preprocess"), "--source-lang", "src", "--target-lang", "tgt",
        "--trainpref", str(raw / "train"), "--validpref", str(raw / "dev-0"),
        "--testpref", ",".join(str(raw / s) for s in test_splits), "--destdir", str(out),
        "--joined-dictionary", "--dataset-impl", "mmap", "--workers", str(workers),
    ]
    run(cmd)
    # fairseq-preprocess names them valid, test, test1, test2, ...
    renames = {"valid": "dev-0"}
    renames.update({("test" if i == 0 else f"test{i}"): s for i, s in enumerate(test_splits)})
    for name, split in renames.items():
        for f in out.glob(f"{name}.src-tgt.*"):
            f.rename(out / (split + f.name[len(name):]))
    return out


def copy_task(root: Path, sizes=(64, 8, 6), src_len=(40, 200), vocab=50, seed=0) -> Path:
    """Targets are the first 8 source tokens: learnable in a few updates, any length of input."""
    rng = random.Random(seed)
    raw = root / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    for split, size in zip(SPLITS, sizes):
        pairs = []
        for _ in range(size):
            n = rng.randint(*src_len)
            source = [f"w{rng.randrange(vocab)}" for _ in range(n)]
            pairs.append((source, source[:8]))
        write_split(raw, split, pairs)
    return binarize(raw, root / "bin")


def summaries_corpus(root: Path, seed=0):
    """Documents of 100-1200 random words (so chunking and the 512-wide pooler both engage) in
    the splits of SPLIT_SIZES, test-A's first one LONG_DOC_TOKENS long; the 'summary' is the
    first 10 words. Returns (text folder, binarized folder)."""
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


def spm_model(raw: Path, out: Path) -> Path:
    """A sentencepiece model of 200 pieces trained on raw/train.src, as out/spm.model."""
    import sentencepiece as spm

    spm.SentencePieceTrainer.train(
        input=str(raw / "train.src"), model_prefix=str(out / "spm"), vocab_size=200,
        hard_vocab_limit=False, minloglevel=2)
    return out / "spm.model"
