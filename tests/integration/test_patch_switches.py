"""Switching patches off (DEEP_PYRAMIDION_NO_PATCHES) is visible and explained: the commands log
that patches are off (also pyramidion-summarize, whose logging starts after the adapter's import,
and with 'all', where nothing else had configured logging by then), and under torch >= 2.6 a
switched-off safe_checkpoint_loading, which leaves every fairseq checkpoint unloadable, ends the
load in one line saying why instead of torch's 35-line traceback."""
from pathlib import Path

import pytest

from deep_pyramidion.fairseq_plugin import patches
from tests.support.paths import USER_DIR, console_script
from tests.support.processes import run_process, subprocess_env

PREMOVE = Path(__file__).resolve().parents[1] / "data" / "premove"
SUMMARIZE = [console_script("pyramidion-summarize"), "--checkpoint", str(PREMOVE / "topk.pt"),
             "--data", str(PREMOVE), "--no-bpe", "--beam", "1", "--max-len-b", "3", "-"]
INTERACTIVE = [console_script("fairseq-interactive"), str(PREMOVE), "--path",
               str(PREMOVE / "topk.pt"), "--user-dir", USER_DIR, "--source-lang", "src",
               "--target-lang", "tgt", "--cpu", "--beam", "1"]
OFF_LINE = f"switched off by {patches.DISABLE_ENV}:"


def run(argv, switched_off, **env):
    environment = subprocess_env()          # (which drops TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD)
    environment.update(env)
    environment[patches.DISABLE_ENV] = switched_off
    return run_process(argv, env=environment, stdin="w1 w2 w3\n")


def torch_refuses_fairseq_checkpoints():
    import torch

    return tuple(int(p) for p in torch.__version__.split(".")[:2]) >= (2, 6)


@pytest.mark.skipif(not torch_refuses_fairseq_checkpoints(), reason="torch < 2.6 loads with pickle")
@pytest.mark.parametrize("argv, switched_off", [(SUMMARIZE, "all"),
                                                (INTERACTIVE, "safe_checkpoint_loading"),
                                                (INTERACTIVE, "all")])
def test_loading_without_safe_checkpoint_loading_ends_in_one_line(argv, switched_off):
    proc = run(argv, switched_off)
    assert proc.returncode == 1, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr and "WeightsUnpickler" not in proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith(f"error: safe_checkpoint_loading is switched off "
                           f"({patches.DISABLE_ENV}={switched_off})"), last
    assert "no fairseq checkpoint loads" in last and "TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD" in last
    # the patches line came first, as a warning that names what is off
    off = [line for line in proc.stderr.splitlines() if OFF_LINE in line]
    assert len(off) == 1 and "safe_checkpoint_loading" in off[0], proc.stderr[-3000:]


@pytest.mark.parametrize("verbose", [[], ["-v"]])
def test_summarize_logs_that_all_patches_are_off(verbose):
    # TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD: the checkpoint loads, so the run goes through
    proc = run(SUMMARIZE[:-1] + verbose + ["-"], "all", TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD="1")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert len(proc.stdout.splitlines()) == 1
    off = [line for line in proc.stderr.splitlines() if OFF_LINE in line]
    assert len(off) == 1, proc.stderr[-3000:]
    assert all(name in off[0] for name in patches.BY_NAME)
    assert "patches fairseq: nothing" in off[0]
    assert "deep_pyramidion" not in proc.stdout            # the log stays out of the summaries


def test_summarize_logs_the_patches_when_some_are_off():
    proc = run(SUMMARIZE, "keep_last_batch,ngram_blocking")
    assert proc.returncode == 0, proc.stderr[-3000:]
    off = [line for line in proc.stderr.splitlines() if OFF_LINE in line]
    assert len(off) == 1 and off[0].rstrip().split(OFF_LINE)[1].split("(")[0].strip() == \
        "keep_last_batch, ngram_blocking", off
