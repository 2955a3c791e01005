"""A Hugging Face BART -> pyramidion-convert -> pyramidion-export-hf comes back as the same model.

On inputs within BART's positions no pooler selects (every width is at least the input length),
so the export must compute exactly what transformers' own BartForConditionalGeneration computes:
log-probabilities equal to 1e-5 and the same greedy output. An input 6x the pretrained length
(which BART itself cannot read) generates.
"""
import json

import pytest
import torch

from deep_pyramidion.fairseq_plugin.export_hf import main as export_main
from tests.support.bart import LONG, SIZES, make_hf_bart


@pytest.fixture(scope="module")
def bart_export(tmp_path_factory):
    from deep_pyramidion.fairseq_plugin.convert import convert
    from deep_pyramidion.hf import PyramidionForConditionalGeneration
    from transformers import BartForConditionalGeneration

    root = tmp_path_factory.mktemp("hf-bart")
    source = make_hf_bart(root)
    converted = root / "converted"
    convert(str(source), str(converted), 6 * SIZES["positions"])
    out = root / "export"
    assert export_main(["--checkpoint", str(converted / "model.pt"), "--data", str(converted),
                        str(out)]) == 0
    bart = BartForConditionalGeneration.from_pretrained(str(source)).eval()
    return bart, PyramidionForConditionalGeneration.from_pretrained(str(out)).eval(), out


def test_export_of_a_converted_bart_is_that_bart(bart_export):
    bart, export, out = bart_export
    config = json.loads((out / "config.json").read_text())
    assert export.config.family == "bart" and config["encoder_learned_pos"] and not config["final_logits_bias"]
    g = torch.Generator().manual_seed(0)
    n = SIZES["positions"] - 2
    tokens = torch.randint(4, bart.config.vocab_size - 1, (2, n), generator=g)
    tokens[:, -1] = 2
    tokens[1, 40:] = 1                      # right padding: both number the positions alike
    tokens[1, 39] = 2
    prev = torch.randint(4, bart.config.vocab_size - 1, (2, 9), generator=g)
    prev[:, 0] = 2
    mask = tokens.ne(1).long()
    with torch.no_grad():
        ours = export(input_ids=tokens, attention_mask=mask, decoder_input_ids=prev).logits
        theirs = bart(input_ids=tokens, attention_mask=mask, decoder_input_ids=prev).logits
    assert (ours.log_softmax(-1) - theirs.log_softmax(-1)).abs().max().item() < 1e-5
    # the random BART would end at once: at least 8 tokens, so the comparison reads some
    settings = dict(num_beams=1, do_sample=False, max_new_tokens=12, min_new_tokens=8,
                    no_repeat_ngram_size=0, decoder_start_token_id=2, suppress_tokens=[1])
    with torch.no_grad():
        a = export.generate(input_ids=tokens, attention_mask=mask, **settings)
        b = bart.generate(input_ids=tokens, attention_mask=mask, forced_bos_token_id=None,
                          **settings)
    assert a.tolist() == b.tolist()
    assert a.shape[1] >= 9 and len(set(a[0, 1:].tolist())) > 1


def test_six_times_longer_input_generates(bart_export):
    _, export, _ = bart_export
    assert LONG < 6 * SIZES["positions"] == export.config.max_source_positions
    tokens = torch.randint(4, export.config.vocab_size - 1, (1, 6 * SIZES["positions"]),
                           generator=torch.Generator().manual_seed(1))
    tokens[0, -1] = 2
    with torch.no_grad():
        encoded = export.get_encoder()(tokens)
        out = export.generate(input_ids=tokens, max_new_tokens=8, num_beams=2, min_new_tokens=2)
    # pooled down to the pretrained length: the decoder reads what it was trained on
    assert encoded.last_hidden_state.shape[1] <= SIZES["positions"]
    assert out.shape[0] == 1 and 3 <= out.shape[1] <= 10 and out[0, 0] == 2
