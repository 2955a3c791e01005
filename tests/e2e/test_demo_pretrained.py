"""`make demo PRETRAINED=DIR` end to end on the tiny Hugging Face BART of tests/support/bart.py: the
line the Makefile runs (read with ``make -n``, so the venv is not rebuilt) converts it, binarizes
small text splits (DEMO_RAW) with its byte-level BPE, fine-tunes 2 updates, generates every test
document, scores against Lead and shows a sample; a second run reuses the finished steps. A bad
PRETRAINED stops before any training with one error line naming it."""
import json
import re
import shutil

import pytest

from tests.support.bart import make_hf_bart, write_splits
from tests.support.demo import make_demo_command, repeated_trigrams, run_demo, warning_lines

STEPS = ["prepare", "convert", "preprocess", "finetune", "generate", "score"]


def settings(root, **extra):
    env = {"DEMO_DIR": str(root / "demo"), "DEMO_RAW": str(root / "text"), "DEMO_MAX_UPDATE": "2",
           "DEMO_GEN_ARGS": "--beam 2 --min-len 2 --max-len-b 16", "DEMO_BOOTSTRAP": "20",
           "DEMO_THREADS": "1"}
    env.update(extra)
    return env


def run_pretrained(root, pretrained, **extra):
    """`make demo PRETRAINED=pretrained`'s line (DEMO_PRETRAINED=... when there is no make)."""
    command = make_demo_command(str(pretrained))
    if command is None:
        extra["DEMO_PRETRAINED"] = str(pretrained)
    else:
        assert command == f"DEMO_PRETRAINED='{pretrained}' bash scripts/demo.sh"
    return run_demo(settings(root, **extra), command)


@pytest.fixture(scope="module")
def bart_demo(tmp_path_factory):
    root = tmp_path_factory.mktemp("demo-bart")
    source = make_hf_bart(root)
    sizes = write_splits(root / "text")
    proc = run_pretrained(root, source)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    return {"root": root, "source": source, "sizes": sizes, "proc": proc,
            "work": root / "demo" / "bart"}


@pytest.mark.slow
def test_every_step_runs_on_the_pretrained_model(bart_demo):
    out, work, n_test = bart_demo["proc"].stdout, bart_demo["work"], bart_demo["sizes"]["test-A"]
    headers = re.findall(r"^=== (\w+)  \(load average .*; log (\S+)\) ===$", out, re.M)
    assert [name for name, _ in headers] == STEPS
    assert all(log == str(work / "logs" / f"{name}.log") for name, log in headers)
    # converted from the given folder at the demo's length
    report = json.loads((work / "converted" / "convert.json").read_text())
    assert report["source"] == str(bart_demo["source"]) and report["max_source_positions"] == 2048
    assert f"wrote {work / 'converted'} (pyramidion_bart_base, 2048 source positions" in out
    # binarized with the model's own BPE and dictionary
    manifest = json.loads((work / "data-bin" / "preprocess.json").read_text())
    assert manifest["bpe"] == "gpt2" and manifest["documents"] == bart_demo["sizes"]
    assert (work / "data-bin" / "encoder.json").is_file()
    assert not (work / "data-bin" / "spm.model").exists()
    assert "byte-level BPE" in out
    # fine-tuned from the converted weights, with its recipe
    assert "recipe configs/train/bart_aclsum_cpu.args" in out
    assert f"loading pretrained model from {work / 'converted' / 'model.pt'}" in out
    assert re.search(r"num_updates[ =]+2\b", out)
    assert (work / "checkpoints" / "checkpoint_last.pt").is_file()
    # every test document summarized, with text decoded from the BPE, no trigram of BPE tokens twice
    generated = (work / "generate" / "generate-test-A.txt").read_text()
    assert len(re.findall(r"^D-\d+\t", generated, re.M)) == n_test
    assert f"{n_test} summaries for the {n_test} test-A documents" in out
    assert f"(the {n_test} documents of test-A)" in out
    assert repeated_trigrams(generated) == []
    assert "--no-repeat-ngram-size 3" in (work / "logs" / "generate.log").read_text()
    # the ROUGE table, the model next to Lead, and a sample
    rows = {line.split()[0]: line.split() for line in out.splitlines()
            if line.startswith(("pyramidion-bart ", "lead "))}
    assert rows["pyramidion-bart"][1] == rows["lead"][1] == str(n_test)
    rouge = json.loads((work / "rouge.json").read_text())
    assert rouge["n"] == n_test and set(rouge["systems"]) == {"pyramidion-bart", "lead"}
    assert "test-A document 1 (test-A-0)" in out and "REFERENCE" in out
    timings = (work / "timings.txt").read_text().splitlines()
    assert [t.split()[0] for t in timings] == STEPS + ["total"]
    assert not (bart_demo["root"] / "demo" / "checkpoints").exists()   # the scratch path's place


@pytest.mark.slow
def test_warnings_are_in_the_logs_not_on_the_console(bart_demo):
    proc, work = bart_demo["proc"], bart_demo["work"]
    assert warning_lines(proc.stdout + proc.stderr) == []
    for step in ("finetune", "generate"):     # fairseq's and hydra's warnings, whole
        log = (work / "logs" / f"{step}.log").read_text()
        assert warning_lines(log), step
        counted = re.search(rf"^--- {step}: \d+s \((\d+) warning lines in (\S+)\)$", proc.stdout,
                            re.M)
        assert counted and counted.group(2) == str(work / "logs" / f"{step}.log")
        assert int(counted.group(1)) > 0


@pytest.mark.slow
def test_rerun_reuses_the_finished_steps(bart_demo):
    root, work = bart_demo["root"], bart_demo["work"]
    ckpt = work / "checkpoints" / "checkpoint_last.pt"
    stamp = ckpt.stat().st_mtime_ns
    again = run_pretrained(root, bart_demo["source"])
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    for what in ("prepared text", "converted model", "binarized data", "trained model"):
        assert f"reusing the {what}" in again.stdout
    assert ckpt.stat().st_mtime_ns == stamp
    assert "5 summaries for the 5 test-A documents" in again.stdout

    # the conversion belongs to this source: another one is refused, naming both, before training
    other = root / "other-bart"
    shutil.copytree(bart_demo["source"], other)
    proc = run_pretrained(root, other)
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert proc.returncode == 2 and len(errors) == 1, proc.stderr
    assert str(other) in errors[0] and str(bart_demo["source"]) in errors[0]
    assert "=== finetune" not in proc.stdout


@pytest.mark.parametrize("kind", ["missing", "not a folder", "not a BART", "another model"])
def test_a_bad_pretrained_folder_is_one_error_line_before_any_training(tmp_path, kind):
    write_splits(tmp_path / "text")
    bad = tmp_path / "bad"
    if kind == "not a folder":
        bad.write_text("model.pt\n")
    elif kind == "not a BART":
        bad.mkdir()
        (bad / "notes.txt").write_text("not a model\n")
    elif kind == "another model":
        bad.mkdir()
        (bad / "config.json").write_text('{"model_type": "t5"}\n')
    proc = run_pretrained(tmp_path, bad)
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert proc.returncode in (1, 2) and len(errors) == 1, proc.stdout + proc.stderr
    assert str(bad) in errors[0]
    assert "Traceback" not in proc.stderr
    assert "=== finetune" not in proc.stdout and "=== preprocess" not in proc.stdout
    assert not (tmp_path / "demo" / "bart" / "checkpoints").exists()
