"""The Hugging Face model on its own (no fairseq): config, caching, saving, training.

A tiny PyramidionForConditionalGeneration built from a PyramidionHFConfig (d=32, 2+2 layers,
chunks of 16, pooling 48 -> 16) on inputs long enough for both poolers to select.
"""
import dataclasses

import pytest
import torch

pytest.importorskip("transformers")

from deep_pyramidion.config import PyramidionConfig  # noqa: E402
from deep_pyramidion.hf import PyramidionForConditionalGeneration, PyramidionHFConfig  # noqa: E402

VOCAB = 60


def tiny(**overrides) -> PyramidionForConditionalGeneration:
    config = PyramidionHFConfig(
        vocab_size=VOCAB, encoder_embed_dim=32, encoder_ffn_embed_dim=64,
        decoder_ffn_embed_dim=64, encoder_attention_heads=2, decoder_attention_heads=2,
        chunk_size=16, enc_layers_and_token_width="{0: 48, 1: 16}", dropout=0.0, **overrides)
    torch.manual_seed(0)
    return PyramidionForConditionalGeneration(config)


def batch(lengths=(150, 90), seed=0):
    g = torch.Generator().manual_seed(seed)
    tokens = torch.full((len(lengths), max(lengths)), 1)
    for row, n in enumerate(lengths):               # left padding, as the tokenizer pads
        tokens[row, -n:] = torch.randint(4, VOCAB, (n,), generator=g)
        tokens[row, -1] = 2
    labels = torch.randint(4, VOCAB, (len(lengths), 6), generator=g)
    return tokens, tokens.ne(1).long(), labels


def test_config_carries_every_core_option():
    config = PyramidionHFConfig(encoder_pooling="avg", chunk_size=64)
    saved = config.to_dict()
    for f in dataclasses.fields(PyramidionConfig):
        assert f.name in saved, f.name
    assert config.pyramidion_config().pooling == "avg"
    again = PyramidionHFConfig.from_dict(saved)
    assert again.pyramidion_config() == config.pyramidion_config()
    assert (again.hidden_size, again.num_hidden_layers) == (512, 2)


def test_encoder_output_carries_the_pooled_padding():
    model = tiny().eval()
    tokens, mask, _ = batch((150, 30))
    out = model.get_encoder()(tokens, mask)
    assert out.last_hidden_state.shape == (2, 16, 32)
    # a 30-token document keeps 16 real positions; the mask says which ones
    assert out.encoder_attention_mask.sum(1).tolist() == [16, 16]
    tokens, mask, _ = batch((150, 10))
    assert model.get_encoder()(tokens, mask).encoder_attention_mask.sum(1).tolist() == [16, 10]


def test_cached_decoding_equals_full_decoding():
    model = tiny().eval()
    tokens, mask, labels = batch()
    prev = model.prepare_decoder_input_ids_from_labels(labels)
    with torch.no_grad():
        full = model(input_ids=tokens, attention_mask=mask, decoder_input_ids=prev).logits
        encoder = model.get_encoder()(tokens, mask)
        cache, steps = None, []
        for t in range(prev.size(1)):
            out = model(encoder_outputs=encoder, decoder_input_ids=prev[:, t:t + 1], cache=cache,
                        past_key_values=cache, use_cache=True)
            cache = getattr(out, "cache", None) or out.past_key_values
            steps.append(out.logits)
    assert (torch.cat(steps, 1) - full).abs().max().item() < 1e-5


@pytest.mark.parametrize("settings", [dict(num_beams=4), dict(num_beams=4, num_return_sequences=2),
                                      dict(num_beams=1)], ids=["beam4", "beam4-n2", "greedy"])
def test_generate_with_one_encoder_output_per_document_is_the_expanded_computation(
        settings, monkeypatch):
    """generate() keeps one encoder output per document (the decoder attends with each document's
    beams as queries); the sequences and scores are those of the encoder output repeated per beam
    (transformers' own expansion, GenerationMixin._expand_inputs_for_generation)."""
    from transformers import GenerationMixin

    model = tiny().eval()
    tokens, mask, _ = batch((150, 70))

    def generate():
        with torch.no_grad():
            return model.generate(input_ids=tokens, attention_mask=mask, max_new_tokens=8,
                                  min_new_tokens=3, return_dict_in_generate=True,
                                  output_scores=True, **settings)

    ours = generate()
    cache = getattr(ours, "cache", None) or ours.past_key_values
    assert [layer.keys.size(0) for layer in cache.cross_attention_cache.layers] == [2, 2]
    monkeypatch.setattr(PyramidionForConditionalGeneration, "_expand_inputs_for_generation",
                        GenerationMixin._expand_inputs_for_generation)
    expanded = generate()
    assert torch.equal(ours.sequences, expanded.sequences)
    if settings["num_beams"] > 1:
        assert torch.allclose(ours.sequences_scores, expanded.sequences_scores, atol=1e-6, rtol=0)
    for a, b in zip(ours.scores, expanded.scores):
        assert torch.allclose(a, b, atol=1e-5, rtol=0)


def test_cross_attention_cache_is_kept_once_per_document():
    """Beam search's reorder among a document's beams leaves the per-document keys/values as they
    are; a reorder across documents is refused; repeating and selecting rows (contrastive search)
    keep the documents whose rows remain."""
    from deep_pyramidion.hf.modeling_pyramidion import DocumentCrossAttention

    keys, values = torch.randn(2, 2, 5, 4), torch.randn(2, 2, 5, 4)
    layer = DocumentCrossAttention(keys, values, rows=8)                # 2 documents x 4 beams
    layer.reorder_cache(torch.tensor([3, 3, 0, 1, 4, 7, 7, 5]))
    assert layer.keys is keys and layer.values is values
    with pytest.raises(ValueError, match="another document"):
        layer.reorder_cache(torch.tensor([4, 1, 2, 3, 4, 5, 6, 7]))
    layer.batch_repeat_interleave(2)
    assert layer.rows == 16
    layer.batch_select_indices(torch.arange(8, 16))                     # the second document
    assert layer.rows == 8 and torch.equal(layer.keys, keys[1:])
    with pytest.raises(ValueError, match="once per document"):
        DocumentCrossAttention(keys, values, rows=4).batch_select_indices(torch.tensor([0, 2, 3]))


def test_selection_loss_is_added_in_training_only(tmp_path, monkeypatch):
    """selection_loss=1: in training with labels the loss is the cross-entropy + selection_weight
    x the core's selection term (modules/poolers/selection.py: labels from the target ids, -100
    and the special ids ignored); in eval mode and in generate() nothing changes."""
    from deep_pyramidion.hf import modeling_pyramidion
    from deep_pyramidion.modules.poolers.selection import selection_labels, selection_loss

    model = tiny(selection_loss=1, selection_weight=0.5)
    plain = tiny()                                            # the same weights (same seed)
    tokens, mask, labels = batch()
    labels[:, :3] = tokens[:, -4:-1]                          # the targets use some input tokens
    labels[1, -2:] = -100                                     # a shorter target
    model.train()
    plain.train()
    ours = model(input_ids=tokens, attention_mask=mask, labels=labels).loss
    cross_entropy = plain(input_ids=tokens, attention_mask=mask, labels=labels).loss

    records = []
    run_pyramid = modeling_pyramidion.run_pyramid

    def recording(*args, **kwargs):
        out = run_pyramid(*args, **{**kwargs, "record_pooling": True})
        records.extend(out.pooled)
        return out

    monkeypatch.setattr(modeling_pyramidion, "run_pyramid", recording)
    model.get_encoder()(tokens, mask)
    targets = selection_labels(tokens, labels, {-100, 0, 1, 2, 3})
    assert 0 < targets[mask.bool()].mean() < 1
    term = selection_loss(records, model.get_encoder().poolers, targets)
    assert len(records) == 2 and term.item() > 0
    assert torch.allclose(ours, cross_entropy + 0.5 * term, atol=1e-6, rtol=0)
    monkeypatch.undo()

    term.backward()                                           # the term trains the scorers
    assert all(p.grad is not None and p.grad.abs().sum() > 0
               for n, p in model.named_parameters() if "poolers" in n)

    model.eval()
    plain.eval()
    with torch.no_grad():
        a = model(input_ids=tokens, attention_mask=mask, labels=labels).loss
        b = plain(input_ids=tokens, attention_mask=mask, labels=labels).loss
        ga = model.generate(input_ids=tokens, attention_mask=mask, num_beams=2, max_new_tokens=5)
        gb = plain.generate(input_ids=tokens, attention_mask=mask, num_beams=2, max_new_tokens=5)
    assert torch.equal(a, b) and torch.equal(ga, gb)

    model.save_pretrained(tmp_path)
    again = PyramidionForConditionalGeneration.from_pretrained(tmp_path)
    assert (again.config.selection_loss, again.config.selection_weight) == (1, 0.5)
    assert PyramidionHFConfig().selection_weight == 1.0


def test_save_and_load_round_trip_is_exact(tmp_path):
    model = tiny(encoder_pooling="conv").eval()
    model.save_pretrained(tmp_path)
    again = PyramidionForConditionalGeneration.from_pretrained(tmp_path).eval()
    tokens, mask, labels = batch()
    with torch.no_grad():
        a = model(input_ids=tokens, attention_mask=mask, labels=labels).logits
        b = again(input_ids=tokens, attention_mask=mask, labels=labels).logits
    assert torch.equal(a, b)
    # one tensor in memory, as in the checkpoint: embeddings and LM head shared
    assert again.lm_head.weight is again.model.shared.weight
    assert again.model.encoder.embed_tokens.weight is again.model.shared.weight


def test_training_lowers_the_loss_and_gradient_checkpointing_is_exact():
    model = tiny()
    model.train()
    tokens, mask, labels = batch()
    loss = model(input_ids=tokens, attention_mask=mask, labels=labels).loss
    loss.backward()
    plain = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    assert any("poolers" in n for n in plain)            # the scorers learn from the task loss
    model.zero_grad()
    # transformers 5.25 renamed it (the old name warns)
    enable = getattr(model, "activation_checkpointing_enable", None) or \
        model.gradient_checkpointing_enable
    enable()
    assert model.model.encoder.gradient_checkpointing
    model(input_ids=tokens, attention_mask=mask, labels=labels).loss.backward()
    for name, grad in plain.items():
        assert torch.allclose(model.get_parameter(name).grad, grad, atol=1e-6), name
    model.model.encoder.gradient_checkpointing = False

    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    first = None
    for _ in range(30):
        optimizer.zero_grad()
        loss = model(input_ids=tokens, attention_mask=mask, labels=labels).loss
        first = first if first is not None else loss.item()
        loss.backward()
        optimizer.step()
    assert loss.item() < 0.5 * first


def test_runs_in_bfloat16():
    """Sinusoidal positions are computed in float32; they must not turn a bf16 model's states
    back to float32 (the next layer's weights would not match)."""
    model = tiny().eval().to(torch.bfloat16)
    tokens, mask, labels = batch()
    with torch.no_grad():
        logits = model(input_ids=tokens, attention_mask=mask, labels=labels).logits
        out = model.generate(input_ids=tokens, attention_mask=mask, num_beams=2, max_new_tokens=4)
    assert logits.dtype == torch.bfloat16 and torch.isfinite(logits.float()).all()
    assert out.shape[0] == 2


@pytest.mark.parametrize("family, recipe", [("transformer", "paper.args"), ("bart", "bart.args")])
def test_export_decoding_defaults_are_the_recipes(family, recipe):
    """generation_config.json's defaults are configs/generate/*.args' settings, not a copy that
    drifts: a recipe changed without the exporter fails here."""
    from pathlib import Path

    from deep_pyramidion.hf.export import GENERATION_DEFAULTS

    lines = (Path(__file__).resolve().parents[2] / "configs" / "generate" / recipe).read_text()
    flags = dict(line.split(None, 1) for line in lines.splitlines()
                 if line.startswith("--") and len(line.split(None, 1)) == 2)
    expected = dict(beam=int(flags["--beam"]), lenpen=float(flags["--lenpen"]),
                    min_len=int(flags["--min-len"]), max_len_b=int(flags["--max-len-b"]),
                    no_repeat_ngram_size=int(flags.get("--no-repeat-ngram-size", 0)))
    assert GENERATION_DEFAULTS[family] == expected
