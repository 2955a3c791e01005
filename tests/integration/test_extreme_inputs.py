"""Documents of 0, 1 and 100k tokens through fairseq-preprocess, fairseq-train and fairseq-generate.

An empty line binarizes to a lone end-of-sentence token; a 100k-token document is read whole with
--truncate-source and a --max-source-positions above its length. Every document is trained on and
gets exactly one hypothesis."""
import math
import random
import re

import pytest

from tests.support.paths import USER_DIR
from tests.support.corpus import binarize, fairseq_cli, write_split
from tests.support.fairseq_logs import train_inner
from tests.support.processes import run

LONG = 100_000
MAX_POSITIONS = "131072"


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("extreme")
    rng = random.Random(0)

    def doc(n):
        words = [f"w{rng.randrange(60)}" for _ in range(n)]
        return words, words[:8]

    splits = {
        "train": [doc(rng.randint(20, 120)) for _ in range(20)] + [doc(0), doc(0), doc(1), doc(1),
                                                                    doc(LONG)],
        "dev-0": [doc(30), doc(0), doc(1)],
        "test-A": [doc(0), doc(1), doc(LONG), doc(50), doc(0)],
    }
    raw = root / "raw"
    raw.mkdir()
    for split, pairs in splits.items():
        write_split(raw, split, pairs)
    assert (raw / "train.src").read_text().count("\n\n") >= 1  # the empty lines are really there
    return root, binarize(raw, root / "bin"), {s: len(p) for s, p in splits.items()}


@pytest.fixture(scope="module")
def trained(corpus):
    root, data, sizes = corpus
    work = root / "work"
    work.mkdir()
    log = run([
        fairseq_cli("fairseq-train"), str(data), "--user-dir", USER_DIR, "--task", "translation",
        "--arch", "pyramidion_tiny", "--source-lang", "src", "--target-lang", "tgt",
        "--share-all-embeddings", "--dataset-impl", "mmap", "--optimizer", "adam", "--lr", "1e-3",
        "--max-tokens", "120000", "--max-sentences", "8", "--max-epoch", "1", "--cpu",
        "--num-workers", "0", "--seed", "1", "--log-format", "simple", "--log-interval", "1",
        "--truncate-source", "--max-source-positions", MAX_POSITIONS, "--valid-subset", "dev-0",
        "--save-dir", "ckpt", "--no-epoch-checkpoints",
    ], work)
    return work, log


@pytest.mark.slow
def test_training_reads_every_document_and_stays_finite(corpus, trained):
    _, data, sizes = corpus
    _, log = trained
    # fairseq-preprocess kept the empty lines and fairseq loaded every example, the 100k one too
    assert re.search(rf"loaded {sizes['train']} examples from: \S*train\.src-tgt\.src", log)
    assert re.search(rf"loaded {sizes['dev-0']} examples from: \S*dev-0\.src-tgt\.src", log)
    steps = [(fields["loss"], fields["bsz"]) for fields in train_inner(log).values()]
    assert steps and all(math.isfinite(float(loss)) for loss, _ in steps), steps
    # every document was in some batch, the 100k-token one included (fairseq skips, with only a
    # warning, what it considers too long)
    assert sum(int(bsz) for _, bsz in steps) == sizes["train"]
    assert "invalid sizes and will be skipped" not in log
    epoch = re.search(r"\| train \| epoch 001 \| loss ([-\w.]+) ", log)
    assert epoch and math.isfinite(float(epoch.group(1)))
    valid = re.search(r"valid on 'dev-0' subset \| loss ([-\w.]+)", log)
    assert valid and math.isfinite(float(valid.group(1)))


@pytest.mark.slow
def test_generation_gives_one_hypothesis_per_document(corpus, trained):
    _, data, sizes = corpus
    work, _ = trained
    out = run([
        fairseq_cli("fairseq-generate"), str(data), "--user-dir", USER_DIR, "--task", "translation",
        "--source-lang", "src", "--target-lang", "tgt", "--dataset-impl", "mmap",
        "--path", str(work / "ckpt" / "checkpoint_last.pt"), "--gen-subset", "test-A",
        "--truncate-source", "--max-source-positions", MAX_POSITIONS, "--batch-size", "4",
        "--beam", "2", "--max-len-b", "10", "--cpu",
    ], work)
    hyps = {int(m.group(1)) for m in re.finditer(r"^H-(\d+)\t", out, re.M)}
    sources = {int(m.group(1)): m.group(2) for m in re.finditer(r"^S-(\d+)\t?(.*)$", out, re.M)}
    assert hyps == set(range(sizes["test-A"]))
    lengths = sorted(len(s.split()) for s in sources.values())
    # read whole: 0, 0, 1, 50 words and the 100k-token document (nothing cut by truncation)
    assert lengths == [0, 0, 1, 50, LONG]
    assert re.search(r"Generate test-A with beam=2: .*", out)
