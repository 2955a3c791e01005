"""Entry points end an expected failure with one line, never a traceback: pyramidion-summarize on
a damaged model folder (BPE files, dictionaries, a file that is not a sentencepiece model, a BART
not converted yet), a madeupwordNNNN filler emitted by a model (decoded to nothing), an unknown
name in DEEP_PYRAMIDION_NO_PATCHES, scripts/gpu_check.sh with a python that has no torch, and
`make demo PRETRAINED=` with an empty or unusable folder."""
import os
import shutil
import subprocess
import sys

import pytest
import torch

from deep_pyramidion.fairseq_plugin import patches
from tests.support.fairseq_runs import subprocess_env
from tests.support.paths import REPO, USER_DIR, console_script


def one_error_line(proc, status=1):
    assert proc.returncode == status, proc.stdout[-2000:] + proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and proc.stderr.strip().splitlines()[-1] == errors[0], proc.stderr
    return errors[0]


def summarize(folder, checkpoint="model.pt", **env):
    environment = subprocess_env()
    environment.update(env)
    return subprocess.run([console_script("pyramidion-summarize"), "--checkpoint",
                           str(folder / checkpoint), "--data", str(folder), "--beam", "1",
                           "--max-len-b", "3", "-"], input="the model reads long documents\n",
                          env=environment, capture_output=True, text=True, timeout=300)


def damage(folder, kind):
    if kind == "vocab.bpe: one token on a merge line":
        (folder / "vocab.bpe").write_text("#version: 0.2\nabc\n")
        return "vocab.bpe:2: expected two tokens per merge"
    if kind == "vocab.bpe: not text":
        (folder / "vocab.bpe").write_bytes(b"\xff\xfe\x00garbage")
        return "vocab.bpe: not UTF-8 text"
    if kind == "encoder.json: not JSON":
        (folder / "encoder.json").write_text('{"a": ')
        return "encoder.json: not a JSON BPE vocabulary"
    if kind == "encoder.json: a list":
        (folder / "encoder.json").write_text("[1, 2]")
        return "encoder.json: expected a JSON object"
    if kind == "dict.src.txt: no count":
        (folder / "dict.src.txt").write_text("oops\n")
        return "dict.src.txt: not a fairseq dictionary: Incorrect dictionary format"
    if kind == "dict.tgt.txt: a duplicate":
        with open(folder / "dict.tgt.txt", "a") as handle:
            handle.write((folder / "dict.tgt.txt").read_text().splitlines()[0] + "\n")
        return "dict.tgt.txt: not a fairseq dictionary: Duplicate word"
    if kind == "dict.src.txt: not text":
        (folder / "dict.src.txt").write_bytes(b"\xff\xfe 1\n")
        return "dict.src.txt: not a fairseq dictionary: Incorrect encoding"
    if kind == "spm.model: not a sentencepiece model":
        (folder / "encoder.json").unlink()
        (folder / "vocab.bpe").unlink()
        (folder / "spm.model").write_text("not a model\n")
        return "spm.model: not a sentencepiece model"
    raise AssertionError(kind)


@pytest.mark.parametrize("kind", [
    "vocab.bpe: one token on a merge line", "vocab.bpe: not text", "encoder.json: not JSON",
    "encoder.json: a list", "dict.src.txt: no count", "dict.tgt.txt: a duplicate",
    "dict.src.txt: not text", "spm.model: not a sentencepiece model"])
def test_summarize_on_a_damaged_model_folder(bart_converted, tmp_path, kind):
    folder = tmp_path / "model"
    shutil.copytree(bart_converted["huggingface"], folder)
    expected = damage(folder, kind)
    line = one_error_line(summarize(folder))
    assert f"error: {folder}/" in line and expected in line, line


def test_summarize_on_a_bart_that_is_not_converted(bart_sources):
    line = one_error_line(summarize(bart_sources["fairseq"]))
    assert "not a pyramidion summarizer" in line and "pyramidion-convert" in line, line
    assert str(bart_sources["fairseq"] / "model.pt") in line


def test_a_madeupword_filler_decodes_to_nothing(bart_converted):
    from deep_pyramidion.hub import from_pretrained

    hub = from_pretrained(str(bart_converted["fairseq"]), checkpoint_file="model.pt", cpu=True)
    d = hub.tgt_dict
    filler = next(i for i, s in enumerate(d.symbols) if s.startswith("madeupword"))
    words = hub.encode("the model reads")[:-1]           # without </s>
    with_filler = torch.cat([words[:1], torch.tensor([filler]), words[1:]])
    assert hub.decode(with_filler) == hub.decode(words) == "the model reads"


@pytest.mark.parametrize("command", ["pyramidion-summarize", "fairseq-interactive"])
def test_an_unknown_patch_name_is_one_line_naming_the_variable(bart_converted, command):
    folder = bart_converted["huggingface"]
    env = subprocess_env()
    env[patches.DISABLE_ENV] = "keep_last_batch,no_such_patch"
    argv = [console_script(command), str(folder), "--path", str(folder / "model.pt"),
            "--user-dir", USER_DIR, "--source-lang", "src", "--target-lang", "tgt", "--cpu"] \
        if command == "fairseq-interactive" else \
        [console_script(command), "--checkpoint", str(folder / "model.pt"), "--data", str(folder), "-"]
    proc = subprocess.run(argv, input="the model\n", env=env, capture_output=True, text=True,
                          timeout=300)
    line = one_error_line(proc)
    assert line.startswith(f"error: {patches.DISABLE_ENV}: unknown patch name(s) no_such_patch")
    assert all(name in line for name in patches.BY_NAME)


def test_gpu_check_with_a_python_without_torch(tmp_path):
    # the venv's python without its site-packages: a python that has no torch
    python = tmp_path / "python-without-torch"
    python.write_text(f'#!/bin/sh\nexec "{sys.executable}" -S "$@"\n')
    python.chmod(0o755)
    proc = subprocess.run(["bash", str(REPO / "scripts" / "gpu_check.sh"), str(tmp_path / "out")],
                          env=dict(subprocess_env(), GPU_PYTHON=str(python)), capture_output=True,
                          text=True, timeout=120)
    line = one_error_line(proc, status=2)
    assert "has no torch" in line and "GPU_PYTHON" in line
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("kind, removed", [("fairseq", "encoder.json"),
                                           ("huggingface", "merges.txt")])
def test_demo_with_a_bart_that_has_no_bpe_files(bart_sources, tmp_path, kind, removed):
    bart = tmp_path / "bart"
    shutil.copytree(bart_sources[kind], bart)
    (bart / removed).unlink()
    proc = subprocess.run(["bash", str(REPO / "scripts" / "demo.sh")], cwd=REPO,
                          env=dict(subprocess_env(), DEMO_PRETRAINED=str(bart),
                                   DEMO_DIR=str(tmp_path / "demo")),
                          capture_output=True, text=True, timeout=120)
    line = one_error_line(proc, status=2)
    assert f"PRETRAINED={bart}" in line and f"without {removed}" in line
    assert "===" not in proc.stdout and not (tmp_path / "demo").exists()   # before any step


@pytest.mark.skipif(shutil.which("make") is None, reason="no make")
def test_make_demo_with_an_empty_pretrained_is_refused():
    env = {k: v for k, v in subprocess_env().items()
           if k not in ("MAKEFLAGS", "MAKELEVEL", "MFLAGS")}
    proc = subprocess.run(["make", "--no-print-directory", "demo", "PRETRAINED="], cwd=REPO,
                          env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "PRETRAINED= is empty" in lines[0], proc.stderr
    assert proc.stdout == ""                      # nothing ran, not even the venv's set-up
