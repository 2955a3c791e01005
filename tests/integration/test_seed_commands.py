"""The seed's command lines, verbatim, through fairseq's own console scripts."""
import re
import shutil
import sys

import pytest

from tests.support.paths import USER_DIR
from tests.support.fairseq_runs import LONG_DOC_TOKENS, SPLIT_SIZES, seed_command
from tests.support.processes import run, run_process
from tests.support.corpus import fairseq_cli


def hypotheses(output: str):
    return {int(m.group(1)): m.group(2) for m in re.finditer(r"^H-(\d+)\t[^\t]*\t(.*)$", output, re.M)}


def test_seed_training_command(seed_run):
    log = seed_run["train_log"]
    assert "num_updates 2" in log
    assert "PyramidionModel" in log
    assert (seed_run["work"] / "results" / "checkpoint_best.pt").exists()
    # at --max-source-positions 2048 the 2048-wide layer-0 pooler is never active: a warning, no error
    assert "layer 0 keeps 2048 tokens" in log


@pytest.mark.slow  # beam 16 up to 966 tokens, as the seed's command line says
def test_seed_generation_command_reads_long_inputs(seed_run):
    work = seed_run["work"]
    argv = seed_command("generate", seed_run["data"], ckpt=seed_run["ckpt"], spm_model=seed_run["spm"])
    run(argv, cwd=work)
    out = (work / "generate_results" / "generate-test-A.txt").read_text()
    hyps = hypotheses(out)
    assert sorted(hyps) == list(range(SPLIT_SIZES["test-A"]))
    # the 3000-token document (trained with 2048 positions) is read whole, not cut or skipped;
    # sentencepiece decoding glues the synthetic words together, so count them by pattern
    sources = {int(m.group(1)): m.group(2) for m in re.finditer(r"^S-(\d+)\t(.*)$", out, re.M)}
    assert max(len(re.findall(r"w\d+", s)) for s in sources.values()) >= LONG_DOC_TOKENS - 1
    assert all(len(h.split()) >= 1 for h in hyps.values())


def test_resume_from_checkpoint_last(seed_run, tmp_path):
    shutil.copytree(seed_run["work"] / "results", tmp_path / "results")
    argv = [a for a in seed_run["train_argv"]]
    argv[argv.index("--max-update", argv.index("--max-update") + 1) + 1] = "4"  # the appended one
    log = run(argv, cwd=tmp_path)
    assert re.search(r"Loaded checkpoint results/checkpoint_last\.pt \(epoch \d+ @ 2 updates\)", log)
    assert "num_updates 4" in log


def test_interactive(seed_run):
    argv = [fairseq_cli("fairseq-interactive"), str(seed_run["data"]), "--user-dir", USER_DIR,
            "--path", str(seed_run["ckpt"]), "--source-lang", "src", "--target-lang", "tgt",
            "--beam", "2", "--max-len-b", "12"]
    out = run(argv, cwd=seed_run["work"], stdin="w1 w2 w3 w4 w5 w6 w7\n")
    assert re.search(r"^H-0\t", out, re.M)


def test_checkpoint_needs_only_the_allowlist(seed_run):
    """torch's safe loader stays on: importing the plugin is what makes fairseq checkpoints load."""
    probe = ("import sys, torch\n"
             "if sys.argv[2] == '1':\n    import deep_pyramidion.fairseq_plugin\n"
             "state = torch.load(sys.argv[1], weights_only=True)\n"
             "assert 'model' in state\n")
    ckpt = str(seed_run["ckpt"])
    plain = run_process([sys.executable, "-c", probe, ckpt, "0"])
    assert plain.returncode != 0 and "argparse.Namespace" in plain.stderr
    with_plugin = run_process([sys.executable, "-c", probe, ckpt, "1"])
    assert with_plugin.returncode == 0, with_plugin.stderr
