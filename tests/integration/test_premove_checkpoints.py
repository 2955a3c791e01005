"""Checkpoints written by the code before the package was reshaped (tests/data/premove/README.md)
load with fairseq's strict state-dict loading and compute what they computed then: the same
encoder output and the same beam-search hypotheses."""
import json
from pathlib import Path

import pytest
import torch
from fairseq import checkpoint_utils
from fairseq.sequence_generator import SequenceGenerator

import deep_pyramidion.fairseq_plugin  # noqa: F401  (registers the model)
from tests.support.paths import USER_DIR

DATA = Path(__file__).resolve().parents[1] / "data" / "premove"
EXPECTED = json.loads((DATA / "expected.json").read_text())


def load(name):
    models, _cfg, task = checkpoint_utils.load_model_ensemble_and_task(
        [str(DATA / f"{name}.pt")],
        arg_overrides={"data": str(DATA), "user_dir": USER_DIR, "source_lang": "src",
                       "target_lang": "tgt"})
    return models[0].eval(), task


def batch(pad):
    tokens = EXPECTED["inputs"]
    T = max(len(t) for t in tokens)
    src = torch.full((len(tokens), T), pad, dtype=torch.long)
    for i, t in enumerate(tokens):
        src[i, T - len(t):] = torch.tensor(t)  # left-padded, as the translation task does
    return src, torch.tensor([len(t) for t in tokens])


@pytest.mark.parametrize("name", sorted(EXPECTED["models"]))
def test_checkpoint_from_before_the_move_gives_the_same_outputs(name):
    expected = EXPECTED["models"][name]
    model, task = load(name)
    src, lengths = batch(task.source_dictionary.pad())
    with torch.no_grad():
        enc = model.encoder(src, src_lengths=lengths)
        got = enc["encoder_out"][0].transpose(0, 1)
        assert enc["encoder_padding_mask"][0].tolist() == expected["encoder_padding_mask"]
        torch.testing.assert_close(got, torch.tensor(expected["encoder_out"]), atol=1e-5, rtol=1e-5)
        sample = {"net_input": {"src_tokens": src, "src_lengths": lengths}}
        for beam in ("1", "3"):
            gen = SequenceGenerator([model], task.target_dictionary, beam_size=int(beam),
                                    max_len_a=0, max_len_b=12, min_len=8)
            hypos = gen.generate([model], sample)
            assert [[h["tokens"].tolist() for h in hs] for hs in hypos] == expected["hypos"][beam]
            scores = [[float(h["score"]) for h in hs] for hs in hypos]
            torch.testing.assert_close(torch.tensor(scores), torch.tensor(expected["scores"][beam]),
                                       atol=1e-4, rtol=1e-4)
