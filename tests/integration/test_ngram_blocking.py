"""--no-repeat-ngram-size on the CPU path (patches.py: ngram_blocking): the fixed blocker bans
exactly what the definition (and fairseq's CUDA kernel) bans, and no hypothesis of fairseq's beam
search repeats an n-gram, at any beam and batch size; fairseq's own CPU blocker lets repeats
through (the defect the patch exists for, upstream fairseq#5206 / #4709)."""
import json
from pathlib import Path

import pytest
import torch
from fairseq import checkpoint_utils
from fairseq.ngram_repeat_block import NGramRepeatBlock
from fairseq.sequence_generator import SequenceGenerator
from hypothesis import given, settings, strategies as st

from deep_pyramidion.fairseq_plugin import patches
from tests.support.paths import USER_DIR

PREMOVE = Path(__file__).resolve().parents[1] / "data" / "premove"


def banned_by_definition(tokens, vocab, n, step):
    """(rows, vocab) bool: next tokens that would repeat an n-gram of the generated tokens
    tokens[:, 1:step + 1] (position 0 is the start symbol)."""
    out = torch.zeros(tokens.size(0), vocab, dtype=torch.bool)
    for r, row in enumerate(tokens[:, : step + 1].tolist()):
        for i in range(1, step + 2 - n):
            if row[i:i + n - 1] == row[step + 2 - n: step + 1]:
                out[r, row[i + n - 1]] = True
    return out


@settings(max_examples=200, deadline=None)
@given(n=st.integers(1, 4), rows=st.integers(1, 6), length=st.integers(2, 24),
       vocab=st.integers(2, 8), data=st.data())
def test_blocker_bans_exactly_the_repeats(n, rows, length, vocab, data):
    step = data.draw(st.integers(0, length - 2))
    seed = data.draw(st.integers(0, 10_000))
    tokens = torch.randint(0, vocab, (rows, length), generator=torch.Generator().manual_seed(seed))
    lprobs = torch.zeros(rows, vocab)
    out = NGramRepeatBlock(n, use_extension=False)(tokens, lprobs, rows, 1, step)
    assert out is lprobs                                   # in place, as fairseq's contract says
    assert torch.equal(torch.isinf(out), banned_by_definition(tokens, vocab, n, step))


@pytest.fixture(scope="module")
def model():
    models, _, task = checkpoint_utils.load_model_ensemble_and_task(
        [str(PREMOVE / "topk.pt")], arg_overrides={"data": str(PREMOVE), "user_dir": USER_DIR,
                                                   "source_lang": "src", "target_lang": "tgt"})
    return models[0].eval(), task


def hypotheses(model, task, n, beam, batch):
    tokens = json.loads((PREMOVE / "expected.json").read_text())["inputs"]
    rows = [torch.tensor(tokens[i % len(tokens)]) for i in range(batch)]
    T = max(r.numel() for r in rows)
    src = torch.full((batch, T), task.source_dictionary.pad(), dtype=torch.long)
    for i, r in enumerate(rows):
        src[i, T - r.numel():] = r
    sample = {"net_input": {"src_tokens": src, "src_lengths": torch.tensor([r.numel() for r in rows])}}
    gen = SequenceGenerator([model], task.target_dictionary, beam_size=beam, max_len_a=0,
                            max_len_b=24, min_len=20, no_repeat_ngram_size=n)
    with torch.no_grad():
        return [h["tokens"].tolist() for hs in gen.generate([model], sample) for h in hs]


def repeated_ngrams(tokens, n):
    grams = [tuple(tokens[i:i + n]) for i in range(len(tokens) - n + 1)]
    return len(grams) - len(set(grams))


@pytest.mark.parametrize("n", [1, 2, 3])
@pytest.mark.parametrize("beam, batch", [(1, 1), (2, 3), (4, 1), (4, 3)])
def test_no_hypothesis_repeats_an_ngram(model, n, beam, batch):
    for hypo in hypotheses(*model, n, beam, batch):
        assert repeated_ngrams(hypo, n) == 0, hypo


def test_fairseqs_own_cpu_blocker_lets_repeats_through(model):
    patch = patches.BY_NAME["ngram_blocking"]
    assert patch.applied
    patch.revert()
    try:
        unpatched = hypotheses(*model, 2, 2, 3)
    finally:
        patch.apply()
    assert any(repeated_ngrams(h, 2) > 0 for h in unpatched)
