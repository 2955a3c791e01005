"""The adapter's patches of fairseq (deep_pyramidion/fairseq_plugin/patches.py): applied when the
adapter is imported, revertible to fairseq's very own function objects, applicable again,
switchable off one by one from the environment, and logged once by fairseq-train.

What each patch fixes is tested where the behaviour is used: test_keep_last_batch.py (kept last
batch), test_half_precision.py (--bf16 without a TPU), test_checkpoint_safety.py and
test_resume.py (safe loading, atomic copies), test_fairseq_cli_failures.py (one-line errors).
"""
import json
import re
import sys

import pytest

from deep_pyramidion.fairseq_plugin import patches
from tests.support.paths import USER_DIR, console_script
from tests.support.processes import run, run_process, subprocess_env

NAMES = [p.name for p in patches.PATCHES]
TARGETS = {p.name: p.target for p in patches.PATCHES}

# A fresh interpreter: fairseq first (as fairseq-train has it), fairseq's own functions recorded
# before anything of deep_pyramidion is imported, then the adapter, then revert / apply / revert.
# Each target is resolved here independently of patches.py. Prints one JSON report.
PROBE = r"""
import importlib, json, sys
import torch
import fairseq  # noqa: F401

TARGETS = json.loads(sys.argv[1])


def raw(target):
    module, _, path = target.partition(":")
    owner = importlib.import_module(module)
    *parents, name = path.split(".")
    for parent in parents:
        owner = getattr(owner, parent)
    # a class attribute as stored (a staticmethod stays one), a module attribute as it is
    return owner.__dict__[name] if isinstance(owner, type) else getattr(owner, name)


def function(obj):
    return obj.__func__ if isinstance(obj, staticmethod) else obj


originals = {name: raw(target) for name, target in TARGETS.items()}
safe_globals = list(torch.serialization.get_safe_globals())
assert "deep_pyramidion" not in sys.modules

import deep_pyramidion.fairseq_plugin  # noqa: E402
from deep_pyramidion.fairseq_plugin import patches  # noqa: E402


def state():
    out = {}
    for name, target in TARGETS.items():
        now = raw(target)
        out[name] = {
            "is_original": now is originals[name],
            "same_binding": isinstance(now, staticmethod) == isinstance(originals[name], staticmethod),
            "mark": getattr(function(now), patches._MARK, None),
            "has_wrapped": hasattr(function(now), "__wrapped__"),
            "wraps_original": getattr(function(now), "__wrapped__", None) is function(originals[name]),
            "applied": patches.BY_NAME[name].applied,
        }
    return out


report = {"after_import": state()}
patches.revert_all()
report["after_revert"] = state()
# torch keeps its allowlist in a set: compare contents, not the order it lists them in
report["safe_globals_restored"] = set(torch.serialization.get_safe_globals()) == set(safe_globals)
report["applied_again"] = [p.name for p in patches.apply_all()]
report["after_apply"] = state()
patches.revert_all()
report["after_second_revert"] = state()
print("REPORT " + json.dumps(report))
"""


def probe(disabled=None):
    env = subprocess_env()
    env.pop(patches.DISABLE_ENV, None)
    if disabled is not None:
        env[patches.DISABLE_ENV] = disabled
    return run_process([sys.executable, "-c", PROBE, json.dumps(TARGETS)], env=env)


def report_of(proc):
    assert proc.returncode == 0, proc.stderr[-4000:]
    line = next(l for l in proc.stdout.splitlines() if l.startswith("REPORT "))
    return json.loads(line[len("REPORT "):])


def assert_wrapped(states, names):
    for name in names:
        s = states[name]
        assert not s["is_original"] and s["applied"], (name, s)
        assert s["mark"] == name, (name, s)     # the wrapper this patch made, not someone else's
        assert s["same_binding"], (name, s)      # a staticmethod stays a staticmethod


def assert_original(states, names):
    for name in names:
        s = states[name]
        assert s["is_original"] and not s["applied"] and s["mark"] is None, (name, s)


def test_there_are_patches_and_each_is_documented():
    assert NAMES and len(set(NAMES)) == len(NAMES)
    for patch in patches.PATCHES:
        assert patch.upstream and patch.summary, patch.name
        assert patch.name in patches.__doc__, f"{patch.name} missing from the module's table"


def test_apply_revert_apply_puts_fairseqs_own_functions_back():
    report = report_of(probe())
    assert_wrapped(report["after_import"], NAMES)
    # a wrapper made with functools.wraps points at fairseq's very function (a replacement such
    # as ngram_blocking's has no __wrapped__)
    for name, s in report["after_import"].items():
        assert s["wraps_original"] or not s["has_wrapped"], (name, s)
    assert_original(report["after_revert"], NAMES)
    assert report["safe_globals_restored"]      # torch's allowlist is back as it was, too
    assert report["applied_again"] == NAMES
    assert_wrapped(report["after_apply"], NAMES)
    assert_original(report["after_second_revert"], NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_the_environment_switches_off_exactly_one_patch(name):
    report = report_of(probe(disabled=name))
    others = [n for n in NAMES if n != name]
    assert_original(report["after_import"], [name])
    assert_wrapped(report["after_import"], others)
    assert report["applied_again"] == others    # apply_all reads the environment each time
    assert_original(report["after_second_revert"], NAMES)


def test_all_switches_off_every_patch():
    report = report_of(probe(disabled="all"))
    assert_original(report["after_import"], NAMES)
    assert report["applied_again"] == []


def test_an_unknown_name_is_a_clear_error_at_import():
    proc = probe(disabled=f"{NAMES[0]},no_such_patch")
    assert proc.returncode != 0
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("ValueError: ") and patches.DISABLE_ENV in last, last
    assert "no_such_patch" in last and all(name in last for name in NAMES), last


def test_an_unknown_name_changes_nothing_in_process(monkeypatch):
    assert all(p.applied for p in patches.PATCHES)
    before = {p.name: p.current() for p in patches.PATCHES}
    monkeypatch.setenv(patches.DISABLE_ENV, "keep_last_batch, typo")
    with pytest.raises(ValueError, match=rf"{patches.DISABLE_ENV}: unknown patch name\(s\) typo"):
        patches.apply_all()
    assert {p.name: p.current() for p in patches.PATCHES} == before


def test_fairseq_train_logs_the_patches_once_at_info(data_bin, tmp_path):
    env = subprocess_env()
    env.pop(patches.DISABLE_ENV, None)
    argv = [console_script("fairseq-train"), data_bin, "--user-dir", USER_DIR, "--task", "translation",
            "--arch", "pyramidion_tiny", "--source-lang", "src", "--target-lang", "tgt",
            "--share-all-embeddings", "--optimizer", "adam", "--lr", "1e-3", "--max-update", "1",
            "--batch-size", "8", "--cpu", "--num-workers", "0", "--disable-validation", "--no-save",
            "--log-format", "simple", "--max-source-positions", "256"]
    log = run(argv, cwd=tmp_path, env=env, timeout=600)
    lines = [l for l in log.splitlines() if "deep_pyramidion patches fairseq:" in l]
    assert len(lines) == 1, lines
    # fairseq's log format: time | level | logger | message
    assert re.search(r"\| INFO \| deep_pyramidion\.fairseq_plugin\.patches \| deep_pyramidion "
                     r"patches fairseq: ", lines[0]), lines[0]
    assert all(name in lines[0] for name in NAMES), lines[0]
    assert patches.DISABLE_ENV in lines[0]    # says how to switch one off
    assert "num_updates 1" in log


def test_linear_bpe_merge_gives_fairseqs_own_tokens():
    """fairseq's --bpe gpt2 encoder with the patch gives, word for word, what fairseq's own
    Encoder.bpe gives (random merges, ranks in any order, long words included), and keeps
    fairseq's cache and return value (tokens joined by spaces)."""
    import random

    from fairseq.data.encoders.gpt2_bpe_utils import Encoder

    patch = patches.BY_NAME["linear_bpe_merge"]
    assert patch.applied and getattr(Encoder.bpe, patches._MARK, None) == "linear_bpe_merge"
    fairseqs = patch._original
    rng = random.Random(0)
    for trial in range(300):
        tokens, merges = list("abc"), []
        for _ in range(rng.randint(0, 25)):
            pair = (rng.choice(tokens), rng.choice(tokens))
            if pair not in merges:
                merges.append(pair)
                tokens.append(pair[0] + pair[1])
        if trial % 2:
            rng.shuffle(merges)
        vocab = {t: i for i, t in enumerate(dict.fromkeys(tokens))}
        ours, theirs = Encoder(vocab, merges), Encoder(vocab, merges)
        for _ in range(5):
            word = "".join(rng.choice("abc") for _ in range(rng.choice([1, 2, 7, 40, 400])))
            assert ours.bpe(word) == fairseqs(theirs, word), (word, merges)
            assert ours.cache.get(word, word) == ours.bpe(word)


def test_gpt2_decode_fillers_drops_only_the_fillers():
    """fairseq's GPT2BPE.decode with the patch: what fairseq's own decode gives for ids (and
    <unk>, <mask>), and madeupwordNNNN fillers decoded to nothing where fairseq's int() failed."""
    from argparse import Namespace

    from fairseq.data.encoders.gpt2_bpe import GPT2BPE
    from tests.support.bart import corpus
    from deep_pyramidion.data.gpt2_bpe import learn_merges, write_bpe_files

    patch = patches.BY_NAME["gpt2_decode_fillers"]
    assert patch.applied
    fairseqs = patch._original
    import tempfile
    with tempfile.TemporaryDirectory() as folder:
        tokens, ranks = learn_merges(corpus(50, seed=0), merges=60)
        write_bpe_files({t: i for i, t in enumerate(tokens)}, ranks, f"{folder}/encoder.json",
                        f"{folder}/vocab.bpe")
        bpe = GPT2BPE(Namespace(gpt2_encoder_json=f"{folder}/encoder.json",
                                gpt2_vocab_bpe=f"{folder}/vocab.bpe"))
        ids = bpe.encode("the model reads long documents <unk>")
        assert bpe.decode(ids) == fairseqs(bpe, ids)
        with_fillers = " ".join(["madeupword0000"] + ids.split()[:3] + ["madeupword0012"]
                                + ids.split()[3:])
        assert bpe.decode(with_fillers) == fairseqs(bpe, ids)
        with pytest.raises(ValueError):
            fairseqs(bpe, with_fillers)               # what fairseq itself does
