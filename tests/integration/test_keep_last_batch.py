"""No batching path of fairseq drops examples once the plugin is loaded.

fairseq main drops the last batch when its size is not a multiple of
--required-batch-size-multiple (default 8); the adapter's keep_last_batch patch
(deep_pyramidion/fairseq_plugin/patches.py) puts it back.
"""
import re

import numpy as np
import pytest
import torch

import deep_pyramidion.fairseq_plugin  # noqa: F401  (applies the keep_last_batch patch)
from tests.support.fairseq_runs import SPLIT_SIZES, seed_command
from tests.support.processes import run
from tests.support.models import training_args
from fairseq import tasks
from fairseq.data import data_utils


def generate(seed_run, split, *extra):
    # the seed's generation flags (--batch-size 8 included); outputs kept short so the run is
    # quick: what is under test is which documents come out, not how long they are
    argv = seed_command("generate", seed_run["data"], ckpt=seed_run["ckpt"], spm_model=seed_run["spm"])
    argv[argv.index("--gen-subset") + 1] = split
    results = seed_run["work"] / f"gen-{split}{'-'.join(extra)}"
    argv[argv.index("--results-path") + 1] = str(results)
    argv += ["--min-len", "1", "--max-len-b", "12", *extra]
    run(argv, cwd=seed_run["work"])
    out = (results / f"generate-{split}.txt").read_text()
    return [int(i) for i in re.findall(r"^H-(\d+)\t", out, re.M)]


@pytest.mark.parametrize("split", ["test-1", "test-6", "test-13", "test-16"])
def test_generation_yields_one_hypothesis_per_document(seed_run, split):
    ids = generate(seed_run, split)
    assert sorted(ids) == list(range(SPLIT_SIZES[split]))


def test_generation_with_max_tokens(seed_run):
    argv_extra = ("--max-tokens", "3000")
    ids = generate(seed_run, "test-13", *argv_extra)
    assert sorted(ids) == list(range(SPLIT_SIZES["test-13"]))


def load_task(seed_run, split):
    args = training_args(seed_run["data"], "--dataset-impl", "mmap", arch="pyramidion_base")
    task = tasks.setup_task(args)
    task.load_dataset(split)
    return task, task.dataset(split)


def test_validation_sees_every_target_token(seed_run):
    task, dataset = load_task(seed_run, "dev-0")
    itr = task.get_batch_iterator(dataset, max_sentences=8, required_batch_size_multiple=8,
                                  seed=1).next_epoch_itr(shuffle=False)
    ntokens = sum(sample["ntokens"] for sample in itr)
    assert ntokens == int(dataset.tgt_sizes.sum())


def test_training_epoch_visits_every_example(seed_run):
    task, dataset = load_task(seed_run, "train")
    epoch = task.get_batch_iterator(dataset, max_sentences=16, required_batch_size_multiple=8,
                                    seed=1, epoch=1)
    ids = torch.cat([sample["id"] for sample in epoch.next_epoch_itr(shuffle=True)])
    assert sorted(ids.tolist()) == list(range(SPLIT_SIZES["train"]))


@pytest.mark.parametrize("n, bsz, mult", [(13, 8, 8), (16, 8, 8), (1, 8, 8), (29, 6, 4), (7, 7, 3)])
def test_batch_by_size_keeps_the_tail(n, bsz, mult):
    indices = np.arange(n, dtype=np.int64)
    batches = data_utils.batch_by_size(indices, num_tokens_fn=lambda i: 10,
                                       max_sentences=bsz, required_batch_size_multiple=mult)
    assert sorted(np.concatenate(batches).tolist()) == list(range(n))


def test_upstream_fairseq_drops_without_the_fix():
    upstream = data_utils.batch_by_size.__wrapped__
    batches = upstream(np.arange(13, dtype=np.int64), num_tokens_fn=lambda i: 10, max_sentences=8,
                       required_batch_size_multiple=8)
    kept = sum(len(b) for b in batches)
    if kept == 13:
        pytest.skip("this fairseq (0.12.2) keeps the last batch by itself")
    assert kept == 8  # fairseq main: the partial batch of 5 is gone
