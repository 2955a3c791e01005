"""Session fixtures: one generated corpus, binarized once, and one model trained once with the seed's
own training command line (tests/seed_commands.txt), shared by tests/integration/
(test_seed_commands, test_hub, test_highlight, test_keep_last_batch) and tests/e2e/test_demo.
Helpers live in tests/support/ (imported as ``tests.support.*``), not here."""
import os
import sys

import pytest

from tests.support.corpus import spm_model, summaries_corpus
from tests.support.fairseq_runs import SMALL_MODEL, seed_command
from tests.support.processes import run

# The shell scripts the tests run (scripts/recipe.sh) take python and fairseq from this venv, the
# one running the tests, not from .venv (make test-newest runs them with .venv-newest)
os.environ.setdefault("DEEP_PYRAMIDION_VENV", sys.prefix)

# Under `make test` (pytest-xdist, one worker per core) each worker and the fairseq processes it
# starts use one thread: two workers each spinning two OpenMP threads on two cores slow each
# other down. Set before torch is imported, which reads it once.
if os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ["OMP_NUM_THREADS"] = "1"
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(1)


def pytest_collection_modifyitems(config, items):
    """The files holding a slow test run first: a minutes-long test started last would leave the
    other `make test` worker idle meanwhile."""
    slow_files = {item.path for item in items if item.get_closest_marker("slow")}
    items.sort(key=lambda item: item.path not in slow_files)  # stable: the rest keep their order


@pytest.fixture(scope="session")
def seed_run(tmp_path_factory):
    """The seed's training command, small sizes, 2 updates; returns paths and the log."""
    root = tmp_path_factory.mktemp("seed")
    raw, data = summaries_corpus(root)
    spm = spm_model(raw, root)
    work = root / "work"
    work.mkdir()
    argv = seed_command("train", data) + SMALL_MODEL + ["--max-update", "2"]
    log = run(argv, cwd=work)
    return {"root": root, "raw": raw, "data": data, "spm": spm, "work": work,
            "ckpt": work / "results" / "checkpoint_last.pt", "train_argv": argv, "train_log": log}
