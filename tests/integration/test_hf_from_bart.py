"""PyramidionForConditionalGeneration.from_bart: a pyramidion from a local Hugging Face BART with
pyramidion-convert's own logic, but without fairseq, keeping what fairseq cannot hold.

- the same weights as pyramidion-convert followed by pyramidion-export-hf (same seed): the
  converter's reading, position extension and pooler initialisation are shared, not copied;
- a non-zero final_logits_bias (which pyramidion-convert must refuse) is kept, and on inputs within
  BART's positions the model is transformers' BartForConditionalGeneration to 1e-5;
- it saves and loads, and its tokenizer + generate() summarize a 6x longer text.
"""
import pytest
import torch
from safetensors.torch import load_file, save_file

from tests.support.bart import SIZES, make_hf_bart

LONG = 6 * SIZES["positions"]


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    return make_hf_bart(tmp_path_factory.mktemp("from-bart"))


@pytest.fixture(scope="module")
def biased(source, tmp_path_factory):
    """The same BART with a non-zero final_logits_bias (as bart-large-cnn has)."""
    import shutil

    folder = tmp_path_factory.mktemp("biased") / "hf-bart"
    shutil.copytree(source, folder)
    weights = load_file(str(folder / "model.safetensors"))
    weights["final_logits_bias"] = torch.randn(weights["final_logits_bias"].shape,
                                               generator=torch.Generator().manual_seed(3))
    save_file(weights, str(folder / "model.safetensors"), metadata={"format": "pt"})
    return folder


def test_from_bart_equals_convert_then_export(source, tmp_path):
    from deep_pyramidion.fairseq_plugin.convert import convert
    from deep_pyramidion.fairseq_plugin.export_hf import main as export_main
    from deep_pyramidion.hf import PyramidionForConditionalGeneration

    convert(str(source), str(tmp_path / "converted"), LONG, seed=1)
    assert export_main(["--checkpoint", str(tmp_path / "converted" / "model.pt"),
                        "--data", str(tmp_path / "converted"), str(tmp_path / "export")]) == 0
    exported = load_file(str(tmp_path / "export" / "model.safetensors"))
    model = PyramidionForConditionalGeneration.from_bart(source, max_source_positions=LONG, seed=1)
    ours = model.state_dict()
    assert model.config.enc_layers_and_token_width == \
        PyramidionForConditionalGeneration.from_pretrained(str(tmp_path / "export")) \
        .config.enc_layers_and_token_width
    assert any(k.startswith("model.encoder.poolers.") for k in exported)
    for name, tensor in exported.items():
        assert torch.equal(ours[name], tensor), name


def test_final_logits_bias_is_kept_and_the_model_is_bart(biased, tmp_path):
    from transformers import BartForConditionalGeneration

    from deep_pyramidion.bart import ConversionError
    from deep_pyramidion.fairseq_plugin.convert import convert
    from deep_pyramidion.hf import PyramidionForConditionalGeneration

    with pytest.raises(ConversionError, match="final_logits_bias"):
        convert(str(biased), str(tmp_path / "converted"), LONG)
    model = PyramidionForConditionalGeneration.from_bart(biased, max_source_positions=LONG,
                                                         dropout=0.0).eval()
    bart = BartForConditionalGeneration.from_pretrained(str(biased)).eval()
    assert torch.equal(model.final_logits_bias, bart.final_logits_bias)
    g = torch.Generator().manual_seed(0)
    tokens = torch.randint(4, bart.config.vocab_size - 1, (2, SIZES["positions"] - 2), generator=g)
    tokens[:, -1] = 2
    tokens[1, 30:] = 1
    tokens[1, 29] = 2
    prev = torch.randint(4, bart.config.vocab_size - 1, (2, 7), generator=g)
    prev[:, 0] = 2
    mask = tokens.ne(1).long()
    with torch.no_grad():
        ours = model(input_ids=tokens, attention_mask=mask, decoder_input_ids=prev).logits
        theirs = bart(input_ids=tokens, attention_mask=mask, decoder_input_ids=prev).logits
    assert (ours - theirs).abs().max().item() < 1e-5
    # without the bias the logits would differ by it
    assert (ours - theirs + bart.final_logits_bias).abs().max().item() > 0.1


def test_saves_loads_and_summarizes_a_long_text(source, tmp_path):
    from deep_pyramidion.hf import PyramidionForConditionalGeneration
    from deep_pyramidion.hf.from_bart import pyramidion_tokenizer_from_bart
    from tests.support.bart import corpus

    model = PyramidionForConditionalGeneration.from_bart(source, max_source_positions=LONG).eval()
    model.save_pretrained(tmp_path / "model")
    tokenizer = pyramidion_tokenizer_from_bart(source, str(tmp_path / "model"))
    again = PyramidionForConditionalGeneration.from_pretrained(tmp_path / "model").eval()
    text = " ".join(corpus(40, seed=9))
    batch = tokenizer(text, truncation=True, max_length=LONG, return_tensors="pt")
    assert batch["input_ids"].shape[1] > 4 * SIZES["positions"]
    with torch.no_grad():
        a = model.generate(**batch, num_beams=2, max_new_tokens=8, min_new_tokens=3)
        b = again.generate(**batch, num_beams=2, max_new_tokens=8, min_new_tokens=3)
    assert torch.equal(a, b) and a.shape[1] >= 4
    assert isinstance(tokenizer.decode(a[0]), str)
