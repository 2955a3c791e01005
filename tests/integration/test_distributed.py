"""Data-parallel training on the CPU: two fairseq-train workers (gloo, legacy_ddp) take the same steps
as one process with --update-freq 2, also after a resume. That every parameter of every encoder
option gets a gradient (an unused parameter stops pytorch_ddp): test_gradient_coverage.py."""
import re
import shutil
import socket
import subprocess

import pytest
import torch

import deep_pyramidion.fairseq_plugin  # noqa: F401  (torch.load: fairseq's checkpoint classes allowlisted)
from tests.support.fairseq_logs import train_inner
from tests.support.paths import USER_DIR, console_script as fairseq_cli
from tests.support.processes import run, subprocess_env

TIMEOUT = 600
# one thread per fairseq process: concurrent runs and workers do not oversubscribe the cores
ENV = subprocess_env(OMP_NUM_THREADS="1")
# dropout off, fixed seed, no validation: a step depends only on the data and the parameters
TRAIN_FLAGS = [
    "--user-dir", USER_DIR, "--task", "translation", "--arch", "pyramidion_tiny",
    "--source-lang", "src", "--target-lang", "tgt", "--share-all-embeddings", "--dataset-impl", "mmap",
    "--optimizer", "adam", "--lr", "1e-3", "--dropout", "0", "--attention-dropout", "0",
    "--activation-dropout", "0", "--max-sentences", "8", "--cpu", "--seed", "3", "--num-workers", "0",
    "--log-format", "simple", "--log-interval", "1", "--no-epoch-checkpoints",
    "--disable-validation", "--criterion", "cross_entropy", "--max-source-positions", "256",
    "--ddp-backend", "legacy_ddp",
]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def train_single(data, save_dir, max_update, cwd):
    argv = [fairseq_cli("fairseq-train"), str(data), *TRAIN_FLAGS, "--update-freq", "2",
            "--max-update", str(max_update), "--save-dir", str(save_dir)]
    return run(argv, cwd=cwd, env=ENV, timeout=TIMEOUT)


def train_two_workers(data, save_dir, max_update, cwd):
    """Two fairseq-train processes, ranks 0 and 1, rendezvous over TCP on 127.0.0.1."""
    port = free_port()
    procs, logs = [], []
    for rank in (0, 1):
        argv = [fairseq_cli("fairseq-train"), str(data), *TRAIN_FLAGS, "--update-freq", "1",
                "--max-update", str(max_update), "--save-dir", str(save_dir),
                "--distributed-world-size", "2", "--distributed-rank", str(rank),
                "--distributed-init-method", f"tcp://127.0.0.1:{port}", "--distributed-no-spawn",
                "--distributed-backend", "gloo", "--device-id", "0"]
        log = open(cwd / f"rank{rank}.log", "w")
        logs.append(log)
        procs.append(subprocess.Popen(argv, cwd=cwd, env=ENV, stdout=log, stderr=subprocess.STDOUT))
    try:
        codes = [p.wait(timeout=TIMEOUT) for p in procs]
    finally:
        for p in procs:  # a worker whose peer died waits forever: end only our own processes
            if p.poll() is None:
                p.kill()
                p.wait()
        for log in logs:
            log.close()
    texts = [(cwd / f"rank{rank}.log").read_text() for rank in (0, 1)]
    assert codes == [0, 0], f"exit codes {codes}\n" + "\n".join(t[-4000:] for t in texts)
    return texts[0]


def losses_and_batch_sizes(log):
    """{num_updates: (loss, bsz)} from fairseq's train_inner lines."""
    return {update: (fields["loss"], fields["bsz"]) for update, fields in train_inner(log).items()}


def load_params(path):
    return torch.load(path, map_location="cpu")["model"]


def assert_same_params(a, b, atol=1e-6):
    assert a.keys() == b.keys()
    worst = max((a[k].float() - b[k].float()).abs().max().item() for k in a)
    assert worst <= atol, f"parameters differ by up to {worst}"


@pytest.fixture(scope="module")
def three_updates(copy_data, tmp_path_factory):
    """One process (--update-freq 2) and two workers (--update-freq 1), 3 updates each."""
    root = tmp_path_factory.mktemp("dist_runs")
    single_log = train_single(copy_data, root / "single", 3, root)
    dist_log = train_two_workers(copy_data, root / "dist", 3, root)
    return root, single_log, dist_log


@pytest.mark.slow
def test_two_workers_match_one_process_with_update_freq_2(three_updates):
    root, single_log, dist_log = three_updates
    single, dist = losses_and_batch_sizes(single_log), losses_and_batch_sizes(dist_log)
    assert sorted(dist) == [1, 2, 3]
    # each update consumed both workers' batches of 8 sentences, like update-freq 2 in one process
    assert all(bsz == 16 for _, bsz in dist.values())
    assert dist == single
    assert "initialized host" in dist_log and "as rank 0" in dist_log
    a = load_params(root / "single" / "checkpoint_last.pt")
    b = load_params(root / "dist" / "checkpoint_last.pt")
    assert_same_params(a, b)
    # training did move: the comparison above is not between two untouched initialisations
    assert dist[3][0] < dist[1][0]
    assert any(k.startswith("encoder.poolers.") for k in a)  # the pooler's scorer was trained too


@pytest.mark.slow
def test_distributed_resume_matches_single_process_resume(copy_data, three_updates, tmp_path):
    """Rank 0 reads checkpoint_last.pt and broadcasts the state to rank 1, which unpickles it with
    torch's safe loader; both continue to update 5 exactly like a resumed single process."""
    root, _, _ = three_updates
    shutil.copytree(root / "single", tmp_path / "single")
    shutil.copytree(root / "dist", tmp_path / "dist")
    single_log = train_single(copy_data, tmp_path / "single", 5, tmp_path)
    dist_log = train_two_workers(copy_data, tmp_path / "dist", 5, tmp_path)
    for log in (single_log, dist_log):
        assert re.search(r"Loaded checkpoint \S+checkpoint_last\.pt \(epoch 1 @ 3 updates\)", log)
    assert sorted(losses_and_batch_sizes(dist_log)) == [4, 5]
    assert losses_and_batch_sizes(dist_log) == losses_and_batch_sizes(single_log)
    assert_same_params(load_params(tmp_path / "single" / "checkpoint_last.pt"),
                       load_params(tmp_path / "dist" / "checkpoint_last.pt"))
