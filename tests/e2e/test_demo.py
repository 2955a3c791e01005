"""scripts/demo.sh (`make demo`) end to end on tiny settings: the seed fixture's corpus instead of
ACLSum (DEMO_RAW / DEMO_BIN), a d=32 model, 2 updates, greedy search, 20 bootstrap resamples.
tests/e2e/test_demo_pretrained.py runs `make demo PRETRAINED=DIR`."""
import json
import re

import pytest

from tests.support.bart import write_splits
from tests.support.demo import make_demo_command, repeated_trigrams, run_demo, warning_lines
from tests.support.fairseq_runs import SPLIT_SIZES
from tests.support.paths import REPO as ROOT

TINY_TRAIN = ("--encoder-embed-dim 32 --encoder-ffn-embed-dim 64 --encoder-attention-heads 2 "
              "--decoder-embed-dim 32 --decoder-ffn-embed-dim 64 --decoder-attention-heads 2")


def test_plain_make_demo_runs_the_demo_from_scratch():
    command = make_demo_command()
    if command is None:
        pytest.skip("no make")
    assert command == "bash scripts/demo.sh"


def test_bad_settings_are_named(tmp_path):
    proc = run_demo({"DEMO_DIR": str(tmp_path / "d"), "DEMO_SAMPLE": "first"})
    assert proc.returncode == 2 and "DEMO_SAMPLE" in proc.stderr
    proc = run_demo({"DEMO_DIR": str(tmp_path / "d"), "DEMO_TRAIN_MINUTES": "ten"})
    assert proc.returncode == 2 and "DEMO_TRAIN_MINUTES" in proc.stderr


def test_a_failing_step_shows_its_error_and_its_log(tmp_path):
    """A step that fails ends the demo with its status; the console gets the end of the step's
    output (here fairseq-train's traceback) and the log's path."""
    broken = tmp_path / "bin"
    broken.mkdir()
    (broken / "dict.src.txt").write_text("")          # taken for binarized data; no dict.tgt.txt
    write_splits(tmp_path / "text")
    proc = run_demo({"DEMO_DIR": str(tmp_path / "d"), "DEMO_RAW": str(tmp_path / "text"),
                     "DEMO_BIN": str(broken), "DEMO_THREADS": "1"})
    log = tmp_path / "d" / "logs" / "train.log"
    assert proc.returncode == 1, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert f"demo: train failed (exit 1); its whole output is in {log}" in proc.stderr
    assert "dict.tgt.txt" in proc.stderr and "dict.tgt.txt" in log.read_text()
    assert "=== generate" not in proc.stdout


@pytest.mark.slow
def test_demo_end_to_end_and_rerun(seed_run, tmp_path):
    n_test = SPLIT_SIZES["test-A"]
    # the fixture's data is binarized words, not sentencepiece pieces: the demo's inference recipe
    # without --bpe
    recipe = (ROOT / "configs" / "generate" / "aclsum_cpu.args").read_text()
    assert "--bpe sentencepiece\n" in recipe
    gen_config = tmp_path / "generate.args"
    gen_config.write_text(recipe.replace("--bpe sentencepiece\n", ""))
    env = {
        "DEMO_DIR": str(tmp_path / "demo"), "DEMO_RAW": str(seed_run["raw"]),
        "DEMO_BIN": str(seed_run["data"]), "DEMO_GEN_CONFIG": str(gen_config),
        "DEMO_MAX_UPDATE": "2", "DEMO_TRAIN_ARGS": TINY_TRAIN,
        "DEMO_GEN_ARGS": "--beam 1 --min-len 1 --max-len-b 6 --batch-size 4",
        "DEMO_BOOTSTRAP": "20", "DEMO_SAMPLE": "2", "DEMO_THREADS": "1",
    }
    proc = run_demo(env)
    out = proc.stdout
    assert proc.returncode == 0, out[-3000:] + proc.stderr[-3000:]
    assert f"{n_test} summaries for the {n_test} test-A documents" in out
    # fairseq's progress (tqdm on a terminal, 'simple' lines here) is shown
    assert re.search(r"num_updates[ =]+2\b", out)
    rows = {line.split()[0]: line.split() for line in out.splitlines()
            if line.startswith(("pyramidion ", "lead "))}
    assert rows["pyramidion"][1] == rows["lead"][1] == str(n_test)
    scores = json.loads((tmp_path / "demo" / "rouge.json").read_text())
    assert scores  # score.py's JSON
    # one generated summary beside its reference: document 2's reference words are printed
    reference = (seed_run["raw"] / "test-A.tgt").read_text().splitlines()[1].split()
    sample = out[out.index("test-A document 2"):]
    assert "GENERATED" in sample and "REFERENCE" in sample
    assert all(word in sample for word in reference[:3])
    timings = (tmp_path / "demo" / "timings.txt").read_text().split("\n")
    steps = ["prepare", "preprocess", "train", "generate", "score"]
    assert [t.split()[0] for t in timings if t] == steps + ["total"]
    # the console: no warning, each step's log named; the logs: every step's whole output, with
    # fairseq's and hydra's warnings
    assert warning_lines(out + proc.stderr) == []
    for step in steps:
        log = tmp_path / "demo" / "logs" / f"{step}.log"
        assert f"log {log})" in out and log.is_file()
    assert warning_lines((tmp_path / "demo" / "logs" / "train.log").read_text())
    assert "fairseq_cli.train | done training" in out
    # no trigram generated twice (--no-repeat-ngram-size 3 on fairseq's CPU path)
    generated = (tmp_path / "demo" / "generate" / "generate-test-A.txt").read_text()
    assert generated.count("\nH-") == n_test and repeated_trigrams(generated) == []
    ckpt = tmp_path / "demo" / "checkpoints" / "checkpoint_last.pt"
    stamp = ckpt.stat().st_mtime_ns

    again = run_demo(env)
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    for step in ("prepared text", "binarized data", "trained model"):
        assert f"reusing the {step}" in again.stdout
    assert ckpt.stat().st_mtime_ns == stamp  # not trained again
    assert f"{n_test} summaries for the {n_test} test-A documents" in again.stdout
