"""Resume: fairseq-train killed with SIGKILL in the middle of an epoch, restarted with the same
command, continues from checkpoint_last.pt exactly like a run that was never interrupted (same
update count, same data order, same parameters). Broken checkpoints stop fairseq-generate and
fairseq-train with one clear line."""
import re
import shutil
import signal
import subprocess
import time

import pytest
import torch

import deep_pyramidion.fairseq_plugin  # noqa: F401  (torch.load: fairseq's checkpoint classes allowlisted)
from tests.support.fairseq_logs import losses_by_update
from tests.support.paths import USER_DIR, console_script as fairseq_cli
from tests.support.processes import run, run_process, subprocess_env

TIMEOUT = 600
# one thread per fairseq process: concurrent runs and workers do not oversubscribe the cores
ENV = subprocess_env(OMP_NUM_THREADS="1")
# the runs expected to fail keep their traceback (the one_line_errors patch off), so that the
# tests can see the exception's type and where it was raised
TRACEBACK_ENV = dict(ENV, DEEP_PYRAMIDION_NO_PATCHES="one_line_errors")
UPDATES_PER_EPOCH = 8  # 64 documents, batches of 4, --update-freq 2
MAX_UPDATE = 10        # the uninterrupted run crosses into epoch 2


def train_argv(data, save_dir, *extra):
    # dropout stays on: fairseq reseeds every update from --seed + num_updates, so a resumed run
    # draws the same masks as the uninterrupted one
    return [fairseq_cli("fairseq-train"), str(data), "--user-dir", USER_DIR, "--task", "translation",
            "--arch", "pyramidion_tiny", "--source-lang", "src", "--target-lang", "tgt",
            "--share-all-embeddings", "--dataset-impl", "mmap", "--optimizer", "adam", "--lr", "1e-3",
            "--dropout", "0.1", "--max-sentences", "4", "--update-freq", "2", "--cpu", "--seed", "7",
            "--num-workers", "0", "--log-format", "simple", "--log-interval", "1",
            "--disable-validation", "--max-source-positions", "256",
            "--save-interval-updates", "2", "--no-epoch-checkpoints",
            "--max-update", str(MAX_UPDATE), "--save-dir", str(save_dir), *extra]


def train(argv, cwd) -> str:
    """A run that must succeed; its log."""
    return run(argv, cwd=cwd, env=ENV, timeout=TIMEOUT)


def fail(argv, cwd):
    """A run expected to fail, with its traceback kept."""
    return run_process(argv, cwd=cwd, env=TRACEBACK_ENV, timeout=TIMEOUT)


def checkpoint_position(path):
    state = torch.load(path, map_location="cpu")
    itr = state["extra_state"]["train_iterator"]
    return state["optimizer_history"][-1]["num_updates"], itr["epoch"], itr["iterations_in_epoch"]


@pytest.fixture(scope="module")
def uninterrupted(copy_data, tmp_path_factory):
    root = tmp_path_factory.mktemp("resume_ref")
    return root, train(train_argv(copy_data, root / "ckpt"), root)


@pytest.mark.slow
def test_sigkill_mid_epoch_then_restart_matches_an_uninterrupted_run(copy_data, uninterrupted, tmp_path):
    ref_root, ref_log = uninterrupted
    reference = losses_by_update(ref_log)
    assert sorted(reference) == list(range(1, MAX_UPDATE + 1))

    save = tmp_path / "ckpt"
    argv = train_argv(copy_data, save)
    log = open(tmp_path / "killed.log", "w")
    proc = subprocess.Popen(argv, cwd=tmp_path, env=ENV, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + TIMEOUT
        # the first mid-epoch checkpoint: fairseq writes checkpoint_1_2.pt, then copies it
        # (atomically) to checkpoint_last.pt, so wait for the copy; the run has eight updates to go
        # then, so the kill lands in the middle of training
        while not (save / "checkpoint_last.pt").exists():
            assert proc.poll() is None, "training ended before its first checkpoint"
            assert time.monotonic() < deadline
            time.sleep(0.005)
        proc.send_signal(signal.SIGKILL)
        assert proc.wait(timeout=60) == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        log.close()
    killed_log = (tmp_path / "killed.log").read_text()

    updates, epoch, offset = checkpoint_position(save / "checkpoint_last.pt")
    assert epoch == 1 and 0 < updates < UPDATES_PER_EPOCH  # a mid-epoch position
    assert offset == 2 * updates  # batches consumed: --update-freq 2
    assert "done training" not in killed_log

    resumed_log = train(argv, tmp_path)  # the very same command
    assert re.search(rf"Loaded checkpoint \S*checkpoint_last\.pt \(epoch 1 @ {updates} updates\)",
                     resumed_log), resumed_log[-3000:]
    losses = losses_by_update(resumed_log)
    assert sorted(losses) == list(range(updates + 1, MAX_UPDATE + 1))
    # same batches in the same order, including the rest of epoch 1 and all of epoch 2
    assert losses == {u: reference[u] for u in losses}
    assert checkpoint_position(save / "checkpoint_last.pt") == \
        checkpoint_position(ref_root / "ckpt" / "checkpoint_last.pt")
    mine = torch.load(save / "checkpoint_last.pt", map_location="cpu")["model"]
    ref = torch.load(ref_root / "ckpt" / "checkpoint_last.pt", map_location="cpu")["model"]
    assert mine.keys() == ref.keys()
    worst = max((mine[k] - ref[k]).abs().max().item() for k in mine)
    assert worst <= 1e-6, f"parameters differ by up to {worst}"


def _last_line(proc):
    return proc.stderr.strip().splitlines()[-1]


def _assert_clear(proc, *needles):
    assert proc.returncode != 0
    last = _last_line(proc)
    assert last.startswith("deep_pyramidion.fairseq_plugin.checkpoint_safety.CheckpointError: "), proc.stderr[-3000:]
    for needle in needles:
        assert needle in last, last
    # the traceback ends in the plugin's wrapper, not inside torch's unpickler or pickle
    assert "_weights_only_unpickler" not in proc.stderr and "pickle.py" not in proc.stderr


def test_truncated_checkpoint_through_fairseq_generate(copy_data, uninterrupted, tmp_path):
    ref_root, _ = uninterrupted
    good = (ref_root / "ckpt" / "checkpoint_last.pt").read_bytes()
    bad = tmp_path / "model.pt"
    bad.write_bytes(good[: len(good) // 2])
    proc = fail([fairseq_cli("fairseq-generate"), str(copy_data), "--user-dir", USER_DIR,
                 "--task", "translation", "--source-lang", "src", "--target-lang", "tgt",
                 "--path", str(bad), "--gen-subset", "test-A", "--beam", "2", "--max-len-b", "5"],
                tmp_path)
    _assert_clear(proc, str(bad), "truncated")


def test_corrupted_restore_file_through_fairseq_train(copy_data, uninterrupted, tmp_path):
    ref_root, _ = uninterrupted
    good = bytearray((ref_root / "ckpt" / "checkpoint_last.pt").read_bytes())
    good[len(good) // 2] ^= 0xFF  # one byte in the middle: inside some tensor's data
    bad = tmp_path / "flipped.pt"
    bad.write_bytes(bytes(good))
    proc = fail(train_argv(copy_data, tmp_path / "ckpt", "--restore-file", str(bad)), tmp_path)
    _assert_clear(proc, str(bad), "corrupted")


@pytest.mark.slow
def test_truncated_checkpoint_last_names_the_way_back(copy_data, uninterrupted, tmp_path):
    """A checkpoint_last.pt cut short (disk full, or a copy killed before copies were atomic) stops
    the restart with a hint naming the newest intact checkpoint; following it resumes training."""
    ref_root, _ = uninterrupted
    save = tmp_path / "ckpt"
    save.mkdir()
    shutil.copy(ref_root / "ckpt" / "checkpoint_1_4.pt", save / "checkpoint_1_4.pt")
    good = (ref_root / "ckpt" / "checkpoint_last.pt").read_bytes()
    (save / "checkpoint_last.pt").write_bytes(good[:1000])
    proc = fail(train_argv(copy_data, save), tmp_path)
    _assert_clear(proc, "checkpoint_last.pt", "--restore-file")
    hint = re.search(r"--restore-file (\S+)", _last_line(proc)).group(1)
    assert hint.endswith("checkpoint_1_4.pt")

    argv = train_argv(copy_data, save, "--restore-file", hint)
    argv[argv.index("--max-update") + 1] = "5"
    text = train(argv, tmp_path)
    assert re.search(r"Loaded checkpoint \S*checkpoint_1_4\.pt \(epoch 1 @ 4 updates\)", text)
    assert sorted(losses_by_update(text)) == [5]
