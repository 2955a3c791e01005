"""The pyramidion model built the way fairseq builds it: options -> task -> model."""
import logging

import pytest
import torch

from deep_pyramidion.modules import ATTENTION_PATTERNS
from tests.support.models import build_model, right_padded_batch, training_args
from fairseq import tasks

# long enough that no test here trips the warning about poolers training never activates
MAX_POSITIONS = 4096


def build(data_bin, *flags, max_source_positions=MAX_POSITIONS):
    model, task, _ = build_model(data_bin, *flags, max_source_positions=max_source_positions)
    return model, task


def test_encoder_shrinks_to_the_last_width(data_bin):
    model, task = build(data_bin)
    model.eval()
    lengths = [300, 130, 5]
    tokens, src_lengths = right_padded_batch(task, lengths)
    out = model.encoder(tokens, src_lengths)
    x, mask = out["encoder_out"][0], out["encoder_padding_mask"][0]
    assert x.shape == (16, 3, 64)            # pyramidion_tiny: {0: 64, 1: 16}
    assert mask.shape == (3, 16)
    # with flip_right a document keeps min(length, k) real outputs; the rest is masked
    assert (~mask).sum(1).tolist() == [min(n, 16) for n in lengths]
    assert out["src_lengths"][0].view(-1).tolist() == [min(n, 16) for n in lengths]
    assert torch.isfinite(x).all()


def test_documents_do_not_leak_into_each_other(data_bin):
    model, task = build(data_bin)
    model.eval()
    tokens, src_lengths = right_padded_batch(task, [300, 200])
    other = tokens.clone()
    other[1, :199] = torch.randint(task.source_dictionary.nspecial, len(task.source_dictionary), (199,))
    a = model.encoder(tokens, src_lengths)["encoder_out"][0]
    b = model.encoder(other, src_lengths)["encoder_out"][0]
    torch.testing.assert_close(a[:, 0], b[:, 0])
    assert not torch.allclose(a[:, 1], b[:, 1])


def test_reorder_encoder_out_for_beam_search(data_bin):
    model, task = build(data_bin)
    model.eval()
    tokens, src_lengths = right_padded_batch(task, [300, 40, 90])
    out = model.encoder(tokens, src_lengths)
    order = torch.tensor([2, 2, 0, 1])
    re = model.encoder.reorder_encoder_out(out, order)
    assert torch.equal(re["encoder_out"][0], out["encoder_out"][0][:, order])
    assert torch.equal(re["encoder_padding_mask"][0], out["encoder_padding_mask"][0][order])


def test_incremental_decoding_matches_full_decoding(data_bin):
    model, task = build(data_bin)
    model.eval()
    tokens, src_lengths = right_padded_batch(task, [300, 70])
    d = task.target_dictionary
    prev = torch.randint(d.nspecial, len(d), (2, 9))
    prev[:, 0] = d.eos()
    with torch.no_grad():
        enc = model.encoder(tokens, src_lengths)
        full, _ = model.decoder(prev, encoder_out=enc)
        full = model.get_normalized_probs((full, None), log_probs=True)
        state = {}
        steps = []
        for t in range(prev.size(1)):
            logits, _ = model.decoder(prev[:, : t + 1], encoder_out=enc, incremental_state=state)
            steps.append(model.get_normalized_probs((logits, None), log_probs=True))
    torch.testing.assert_close(torch.cat(steps, dim=1), full, atol=1e-5, rtol=1e-5)


def test_trained_short_reads_long(data_bin):
    # the checkpoint says 256 positions; the task at inference says 2048: all 2048 are read
    args = training_args(data_bin, max_source_positions=256)
    task = tasks.setup_task(args)
    task.cfg.max_source_positions = 2048 if hasattr(task, "cfg") else None
    model = task.build_model(args)
    assert model.encoder.max_positions() >= 2048
    model.eval()
    tokens, src_lengths = right_padded_batch(task, [2000, 700])
    out = model.encoder(tokens, src_lengths)
    assert out["encoder_out"][0].shape[0] == 16


@pytest.mark.parametrize("flags, attention, pools", [
    ([], "blockwise", True),
    (["--use-sparse-attn", "pooler"], "blockwise", True),
    (["--use-sparse-attn", "only_blockwise"], "blockwise", False),
    (["--use-sparse-attn", "pooler_no_block"], "full", True),
    (["--encoder-pooling", "lambda"], "blockwise", False),
    (["--encoder-pooling", "none", "--encoder-attention", "full"], "full", False),
])
def test_legacy_and_clean_flags(data_bin, flags, attention, pools):
    model, task = build(data_bin, *flags)
    assert type(model.encoder.attention_pattern) is ATTENTION_PATTERNS[attention]
    assert bool(len(model.encoder.poolers)) == pools
    tokens, src_lengths = right_padded_batch(task, [300])
    width = model.encoder(tokens, src_lengths)["encoder_out"][0].shape[0]
    assert width == (16 if pools else 300)


def test_full_and_blockwise_agree_within_one_chunk(data_bin):
    # a sequence that fits in one chunk: blockwise attention is full attention
    full, task = build(data_bin, "--encoder-attention", "full", "--chunk-size", "512")
    block, _ = build(data_bin, "--chunk-size", "512")
    full.eval()
    block.eval()
    tokens, src_lengths = right_padded_batch(task, [300, 100])
    torch.testing.assert_close(full.encoder(tokens, src_lengths)["encoder_out"][0],
                               block.encoder(tokens, src_lengths)["encoder_out"][0])


@pytest.mark.parametrize("flags, needle", [
    (["--chunk-size", "0"], "--chunk-size"),
    (["--chunk-size", "-3"], "--chunk-size"),
    (["--enc-layers-and-token-width", "{0: 16, 1: 64}"], "--enc-layers-and-token-width"),
    (["--enc-layers-and-token-width", "{2: 16}"], "--enc-layers-and-token-width"),
    (["--enc-layers-and-token-width", "__import__('os').getcwd()"], "--enc-layers-and-token-width"),
    (["--encoder-pooling", "magic"], "--encoder-pooling"),
    (["--use-sparse-attn", "pooler_no_block", "--encoder-attention", "blockwise"], "--use-sparse-attn"),
    (["--topk-softmax-base", "1.0"], "--topk-softmax-base"),
])
def test_bad_flags_fail_before_training(data_bin, flags, needle):
    with pytest.raises(ValueError, match=needle):
        build(data_bin, *flags)


def test_warns_about_a_pooler_that_training_never_activates(data_bin, caplog):
    with caplog.at_level(logging.WARNING):
        build(data_bin, "--enc-layers-and-token-width", "{0: 2048, 1: 512}",
              max_source_positions=1024)
    text = caplog.text
    assert "layer 0 keeps 2048 tokens" in text and "untrained" in text
    assert "layer 1" not in text
    assert text.count("layer 0 keeps 2048 tokens") == 1     # the options are validated once


@pytest.mark.parametrize("lengths", [[300, 120], [10, 8]])
@pytest.mark.parametrize("pooling_arch", ["linear", "ffn"])
def test_every_parameter_gets_a_gradient(data_bin, lengths, pooling_arch):
    # an unused parameter breaks DDP; short batches (no selection) must not leave the scorer out
    model, task = build(data_bin, "--encoder-pooling-arch", pooling_arch)
    model.train()
    tokens, src_lengths = right_padded_batch(task, lengths)
    prev = torch.randint(4, len(task.target_dictionary), (len(lengths), 5))
    logits, _ = model(tokens, src_lengths, prev)
    logits.float().logsumexp(-1).sum().backward()
    missing = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
    assert not missing
