"""A fairseq pyramidion and its Hugging Face export compute the same thing.

Teacher-forced log-probabilities equal to 1e-5 for every --encoder-pooling and --encoder-attention
option (and both families' conventions), on a batch with left padding (the translation task's
source side) and documents 3-16x the first pooling width, so every pooler selects; greedy
generate() gives fairseq's beam-1 tokens and beam search with the exported generation config gives
fairseq's hypotheses (SequenceGenerator, what fairseq-generate runs). Tiny random models: the
outputs are not summaries, but any difference in a weight, a mask or a position shows.
"""
import json

import pytest
import torch

from deep_pyramidion.config import POOLINGS
from tests.support.hf import export_built, sentencepiece_data, tiny_pyramidion
from tests.support.models import decoder_batch, left_padded_batch

LENGTHS = [260, 131, 37]          # the first pooling keeps 48, the second 16
OPTIONS = (
    [("--encoder-pooling", name) for name in POOLINGS]
    + [("--encoder-pooling", "none"), ("--encoder-pooling-arch", "ffn")]
    + [("--encoder-attention", name) for name in ("full", "strided", "fixed", "blockwise-memory")]
    + [("--encoder-attention", "blockwise-memory", "--memory-compression", "conv",
        "--compressed-memory-chunks", "2")]
    + [("--encoder-attention", "fixed", "--attention-stride", "8", "--fixed-summary-cells", "2")]
    + [("--encoder-normalize-before", "--decoder-normalize-before", "--activation-fn", "gelu")]
)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return sentencepiece_data(tmp_path_factory.mktemp("hf-data"))


def load(out):
    from deep_pyramidion.hf import PyramidionForConditionalGeneration

    return PyramidionForConditionalGeneration.from_pretrained(str(out)).eval()


def teacher_forced(built, hf, seed=0):
    """Log-probabilities of fairseq and of the export on one batch, and the mask of the target
    positions that are not padding."""
    task = built.task
    tokens, lengths = left_padded_batch(task, LENGTHS, seed=seed)
    prev, _ = decoder_batch(task, rows=len(LENGTHS), length=7, seed=seed)
    pad = task.target_dictionary.pad()
    prev[2, 5:] = pad                                     # a shorter target in the batch
    with torch.no_grad():
        ours = built.model.get_normalized_probs(built.model(tokens, lengths, prev), log_probs=True)
        theirs = hf(input_ids=tokens, attention_mask=tokens.ne(pad).long(),
                    decoder_input_ids=prev).logits.log_softmax(-1)
    return ours, theirs, prev.ne(pad)


@pytest.mark.parametrize("flags", OPTIONS, ids=lambda f: " ".join(f))
def test_teacher_forced_log_probs_equal(data, tmp_path, flags):
    built = tiny_pyramidion(data, *flags)
    hf = load(export_built(built, data, tmp_path / "export"))
    ours, theirs, real = teacher_forced(built, hf)
    assert torch.isfinite(ours[real]).all()
    assert (ours[real] - theirs[real]).abs().max().item() < 1e-5
    # the check can fail: a different input changes the log-probabilities by far more
    other, _, _ = teacher_forced(built, hf, seed=5)
    assert (other[real] - theirs[real]).abs().max().item() > 1e-3


def test_bart_family_conventions_exported(data, tmp_path):
    """Learned positions (offset 2), layernorm_embedding, GELU, post-norm, unscaled embeddings."""
    built = tiny_pyramidion(data, arch="pyramidion_bart_base", max_source_positions=512)
    hf = load(export_built(built, data, tmp_path / "export"))
    config = hf.config
    assert (config.family, config.encoder_learned_pos, config.layernorm_embedding,
            config.activation_fn, config.no_scale_embedding) == ("bart", True, True, "gelu", True)
    assert hf.model.encoder.embed_positions.weight.shape[0] == 512 + 2
    ours, theirs, real = teacher_forced(built, hf)
    assert (ours[real] - theirs[real]).abs().max().item() < 1e-5


def test_every_checkpoint_tensor_is_accounted_for(data, tmp_path):
    built = tiny_pyramidion(data, "--encoder-attention", "blockwise-memory",
                            "--memory-compression", "conv")
    out = export_built(built, data, tmp_path / "export")
    report = json.loads((out / "export.json").read_text())["tensors"]
    assert sorted(r["name"] for r in report) == sorted(built.model.state_dict())
    actions = {r["name"]: r["action"] for r in report}
    assert actions["encoder.embed_tokens.weight"] == "shared"       # --share-all-embeddings
    assert actions["decoder.output_projection.weight"] == "shared"
    assert actions["encoder.version"] == "dropped"
    assert any(n.startswith("encoder.attention_pattern.compressors.") and a == "mapped"
               for n, a in actions.items())
    assert any(n.startswith("encoder.poolers.") and a == "mapped" for n, a in actions.items())


# ---------------------------------------------------------------------------------- generation
def fairseq_hypotheses(built, tokens, lengths, beam, lenpen, min_len, max_len_b, no_repeat):
    from fairseq.sequence_generator import SequenceGenerator

    generator = SequenceGenerator([built.model], built.task.target_dictionary, beam_size=beam,
                                  max_len_a=0, max_len_b=max_len_b, min_len=min_len,
                                  len_penalty=lenpen, no_repeat_ngram_size=no_repeat)
    sample = {"net_input": {"src_tokens": tokens, "src_lengths": lengths}}
    with torch.no_grad():
        hypos = generator.generate([built.model], sample)
    return [h[0]["tokens"].tolist() for h in hypos]


def hf_hypotheses(hf, tokens, pad, **kwargs):
    with torch.no_grad():
        out = hf.generate(input_ids=tokens, attention_mask=tokens.ne(pad).long(), **kwargs)
    hyps = []
    for row in out.tolist():
        row = row[1:]                                     # the decoder's start token (</s>)
        while row and row[-1] == pad:
            row.pop()
        hyps.append(row)
    return hyps


SETTINGS = dict(beam=4, lenpen=2.0, min_len=3, max_len_b=12, no_repeat_ngram_size=3)


@pytest.fixture(scope="module")
def generating(data, tmp_path_factory):
    built = tiny_pyramidion(data, seed=3)
    out = export_built(built, data, tmp_path_factory.mktemp("gen") / "export",
                       generation=SETTINGS)
    return built, load(out)


def test_exported_generation_config_maps_fairseq_settings(generating):
    _, hf = generating
    g = hf.generation_config
    assert (g.num_beams, g.length_penalty, g.min_new_tokens, g.max_new_tokens,
            g.no_repeat_ngram_size, g.early_stopping, g.forced_eos_token_id, g.suppress_tokens) \
        == (4, 2.0, 3, 13, 3, True, 2, [1])


def test_greedy_generate_is_fairseq_beam_1(generating):
    built, hf = generating
    tokens, lengths = left_padded_batch(built.task, LENGTHS + [90], seed=2)
    ours = fairseq_hypotheses(built, tokens, lengths, 1, 2.0, 3, 12, 3)
    theirs = hf_hypotheses(hf, tokens, built.task.target_dictionary.pad(), num_beams=1)
    assert theirs == ours
    assert len({tuple(h) for h in ours}) > 1              # not one degenerate output for all


def test_beam_search_is_fairseq_beam_search(generating):
    built, hf = generating
    tokens, lengths = left_padded_batch(built.task, LENGTHS + [90], seed=2)
    ours = fairseq_hypotheses(built, tokens, lengths, 4, 2.0, 3, 12, 3)
    theirs = hf_hypotheses(hf, tokens, built.task.target_dictionary.pad())
    assert theirs == ours
    # some hypothesis ran into the length limit, where fairseq forces </s>
    assert any(len(h) == 13 for h in ours) or pytest.fail(f"no hypothesis at the limit: {ours}")


def test_beam_search_n_best_and_scores_are_fairseq_with_one_encoder_output_per_document(
        generating):
    """generate() keeps one encoder output per document and each document's beams attend to it
    as queries, as fairseq's decoder does (not a copy per beam): on two documents of different
    lengths, every hypothesis of the beam-4 n-best (num_return_sequences=4) and its score are
    fairseq-generate's, and the cache holds the cross-attention keys/values once per document."""
    from fairseq.sequence_generator import SequenceGenerator

    built, hf = generating
    tokens, lengths = left_padded_batch(built.task, [260, 37], seed=2)
    pad = built.task.target_dictionary.pad()
    generator = SequenceGenerator([built.model], built.task.target_dictionary, beam_size=4,
                                  max_len_a=0, max_len_b=12, min_len=3, len_penalty=2.0,
                                  no_repeat_ngram_size=3)
    sample = {"net_input": {"src_tokens": tokens, "src_lengths": lengths}}
    with torch.no_grad():
        ours = generator.generate([built.model], sample)
        out = hf.generate(input_ids=tokens, attention_mask=tokens.ne(pad).long(),
                          num_return_sequences=4, return_dict_in_generate=True,
                          output_scores=True)
    theirs = []
    for row in out.sequences[:, 1:].tolist():
        while row and row[-1] == pad:
            row.pop()
        theirs.append(row)
    assert theirs == [h["tokens"].tolist() for doc in ours for h in doc]
    fairseq_scores = torch.tensor([float(h["score"]) for doc in ours for h in doc])
    assert torch.allclose(out.sequences_scores, fairseq_scores, atol=1e-6, rtol=0)
    cache = getattr(out, "cache", None) or out.past_key_values
    assert [layer.keys.size(0) for layer in cache.cross_attention_cache.layers] == \
        [2] * hf.config.decoder_layers


def test_transformers_forced_eos_alone_would_rank_beams_differently(generating, monkeypatch):
    """Why the model swaps in FairseqForcedEOS: transformers' own processor gives </s> at the
    limit log-probability 0, and on this batch (every hypothesis reaches the limit) that changes
    which beams win."""
    from transformers import GenerationMixin

    from deep_pyramidion.hf.modeling_pyramidion import PyramidionForConditionalGeneration

    built, hf = generating
    tokens, lengths = left_padded_batch(built.task, LENGTHS + [90], seed=2)
    ours = fairseq_hypotheses(built, tokens, lengths, 4, 2.0, 3, 12, 3)
    monkeypatch.setattr(PyramidionForConditionalGeneration, "_get_logits_processor",
                        GenerationMixin._get_logits_processor)
    assert hf_hypotheses(hf, tokens, built.task.target_dictionary.pad()) != ours
