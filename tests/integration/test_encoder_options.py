"""The encoder options (--encoder-pooling, --encoder-attention, --memory-compression and the
reconstruction criterion) through fairseq: flags checked up front, every parameter trained, and a
two-update fairseq-train + fairseq-generate run per option (tiny copy-task corpus, built once)."""
import json
import re
import sys

import pytest
import torch

from tests.support.paths import USER_DIR
from tests.support.fairseq_runs import run
from tests.support.corpus import copy_task
from tests.support.models import build_model, decoder_batch, left_padded_batch
from fairseq.modules.transformer_layer import TransformerEncoderLayerBase

from deep_pyramidion.fairseq_plugin.criterion import NAME as RECONSTRUCTION
from deep_pyramidion.fairseq_plugin.criterion import SELECTION_NAME as SELECTION

NEW_POOLING = ["hard-topk", "avg", "max", "conv", "dilated-conv", "most-used", "seqpool"]
NEW_ATTENTION = ["strided", "fixed", "blockwise-memory"]


@pytest.fixture(scope="session")
def options_corpus(tmp_path_factory):
    """16 training documents of 40-200 tokens: with --chunk-size 32 and the tiny schedule
    {0: 64, 1: 16} every pattern and every pooler has work to do."""
    return copy_task(tmp_path_factory.mktemp("options"), sizes=(16, 4, 4))


def model_inputs(task, lengths):
    """Left-padded sources, as the translation task collates them, and decoder inputs."""
    tokens, src_lengths = left_padded_batch(task, lengths)
    prev, _ = decoder_batch(task, len(lengths), 6)
    return tokens, src_lengths, prev


# ---------------------------------------------------------------------------------------------
# in-process: flags, shapes, gradients


@pytest.mark.parametrize("flags", [["--encoder-pooling", p] for p in NEW_POOLING]
                         + [["--encoder-attention", a] for a in NEW_ATTENTION]
                         + [["--encoder-attention", a, "--encoder-pooling", "most-used"]
                            for a in NEW_ATTENTION]
                         + [["--encoder-attention", "blockwise-memory", "--memory-compression", c]
                            for c in ["avg", "conv", "most-used", "seqpool"]])
def test_every_option_shrinks_the_encoder_and_trains_every_parameter(options_corpus, flags):
    model, task, _ = build_model(options_corpus, *flags)
    lengths = [300, 130, 20]
    tokens, src_lengths, prev = model_inputs(task, lengths)
    model.train()
    logits, extra = model(tokens, src_lengths, prev)
    loss = logits.float().logsumexp(-1).sum()
    if "reconstruction_loss" in extra:
        loss = loss + extra["reconstruction_loss"][0]
    loss.backward()
    missing = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
    assert not missing                               # DDP without --find-unused-parameters
    model.eval()
    out = model.encoder(tokens, src_lengths)
    x, mask = out["encoder_out"][0], out["encoder_padding_mask"][0]
    assert x.shape == (16, 3, 64) and mask.shape == (3, 16)
    assert torch.isfinite(x).all()
    kept = (~mask).sum(1)
    assert (kept >= 1).all() and (kept <= 16).all()


def test_reconstruction_loss_reaches_the_decoder_output_in_training_only(options_corpus):
    model, task, _ = build_model(options_corpus, "--encoder-attention", "blockwise-memory",
                           "--memory-compression", "conv")
    tokens, src_lengths, prev = model_inputs(task, [300, 130])
    model.train()
    _, extra = model(tokens, src_lengths, prev)
    assert extra["reconstruction_loss"][0].item() > 0
    model.eval()
    _, extra = model(tokens, src_lengths, prev)
    assert "reconstruction_loss" not in extra


def test_default_model_keeps_fairseqs_layer_and_state_dict(options_corpus):
    model, _, _ = build_model(options_corpus)
    layer = model.encoder.layers[0]
    assert isinstance(layer, TransformerEncoderLayerBase)
    assert not [k for k in model.state_dict() if "attention_pattern" in k]


@pytest.mark.parametrize("flags, needle", [
    (["--attention-stride", "-1"], "--attention-stride"),
    (["--encoder-attention", "fixed", "--fixed-summary-cells", "0"], "--fixed-summary-cells"),
    (["--encoder-attention", "fixed", "--attention-stride", "4", "--fixed-summary-cells", "5"],
     "--fixed-summary-cells"),
    (["--memory-compression", "avg"], "--memory-compression"),
    (["--encoder-attention", "blockwise-memory", "--memory-compression", "zip"],
     "--memory-compression"),
    (["--encoder-attention", "blockwise-memory", "--memory-compression", "avg",
      "--memory-compression-rate", "0"], "--memory-compression-rate"),
    (["--compressed-memory-chunks", "-2"], "--compressed-memory-chunks"),
    (["--encoder-pooling", "conv", "--compression-taps", "0"], "--compression-taps"),
    (["--encoder-pooling", "most-used", "--encoder-layerdrop", "0.2"], "--encoder-layerdrop"),
    (["--encoder-pooling", "avgg"], "--encoder-pooling"),
])
def test_bad_flags_fail_before_training(options_corpus, flags, needle):
    with pytest.raises(ValueError, match=needle):
        build_model(options_corpus, *flags)


def criterion_sample(task):
    """A fairseq sample of two documents (300 and 130 tokens) whose target is the decoder input."""
    tokens, src_lengths, prev = model_inputs(task, [300, 130])
    return {"net_input": {"src_tokens": tokens, "src_lengths": src_lengths,
                          "prev_output_tokens": prev},
            "target": prev, "ntokens": prev.numel()}


def test_reconstruction_criterion_refuses_a_model_without_compressed_memory(options_corpus):
    # when the model is built with it: before any training step
    with pytest.raises(ValueError, match=f"--criterion {RECONSTRUCTION} needs .*--memory-compression"):
        build_model(options_corpus, "--criterion", RECONSTRUCTION)
    # and the criterion's own guard, for a model built without it
    model, task, args = build_model(options_corpus)
    args.criterion = RECONSTRUCTION
    criterion = task.build_criterion(args)
    sample = criterion_sample(task)
    model.train()
    with pytest.raises(ValueError, match="--memory-compression"):
        criterion(model, sample)


def test_reconstruction_criterion_adds_the_weighted_term(options_corpus):
    flags = ["--encoder-attention", "blockwise-memory", "--memory-compression", "conv"]
    losses = {}
    for weight in ("0", "2"):
        model, task, args = build_model(options_corpus, *flags, "--criterion", RECONSTRUCTION,
                                  "--reconstruction-weight", weight)
        criterion = task.build_criterion(args)
        model.train()
        loss, sample_size, log = criterion(model, criterion_sample(task))
        losses[weight] = (loss.item(), log["reconstruction_loss"].item(), sample_size)
    (plain, rec, size), (weighted, rec2, _) = losses["0"], losses["2"]
    assert rec == pytest.approx(rec2) and rec > 0
    assert weighted == pytest.approx(plain + 2 * rec * size, rel=1e-5)


def test_selection_criterion_adds_the_weighted_term_in_training_only(options_corpus):
    losses = {}
    for weight in ("0", "2"):
        model, task, args = build_model(options_corpus, "--encoder-pooling", "topk",
                                        "--selection-loss", "1", "--criterion", SELECTION,
                                        "--selection-weight", weight)
        criterion = task.build_criterion(args)
        sample = criterion_sample(task)
        model.train()
        loss, sample_size, log = criterion(model, sample)
        losses[weight] = (loss.item(), log["selection_loss"].item(), sample_size)
        model.eval()
        assert "selection_loss" not in model(**sample["net_input"])[1]
        _, _, eval_log = criterion(model, sample)    # validation: the term is training's only
        assert "selection_loss" not in eval_log
    (plain, term, size), (weighted, term2, _) = losses["0"], losses["2"]
    assert term == pytest.approx(term2) and term > 0
    assert weighted == pytest.approx(plain + 2 * term * size, rel=1e-5)


def test_selection_criterion_refuses_a_model_without_the_selection_loss(options_corpus):
    with pytest.raises(ValueError, match=f"--criterion {SELECTION} needs .*--selection-loss 1"):
        build_model(options_corpus, "--encoder-pooling", "topk", "--criterion", SELECTION)
    model, task, args = build_model(options_corpus, "--encoder-pooling", "topk")
    args.criterion = SELECTION
    criterion = task.build_criterion(args)
    model.train()
    with pytest.raises(ValueError, match="--selection-loss 1"):
        criterion(model, criterion_sample(task))


def test_selection_labels_compare_words_across_separate_dictionaries(options_corpus):
    model, task, _ = build_model(options_corpus, "--encoder-pooling", "topk", "--selection-loss", "1")
    src_dict, tgt_dict = task.source_dictionary, task.target_dictionary
    word = src_dict[src_dict.nspecial + 3]
    src = torch.tensor([[src_dict.index(word), src_dict.eos()]])
    tgt = torch.tensor([[tgt_dict.eos(), tgt_dict.index(word)]])
    assert model.selection_labels(src, tgt).tolist() == [[1.0, 0.0]]
    # the same word under another id in the target's dictionary still matches
    tgt_dict.symbols = list(reversed(tgt_dict.symbols))
    tgt_dict.indices = {w: i for i, w in enumerate(tgt_dict.symbols)}
    model._target_to_source = None
    tgt = torch.tensor([[tgt_dict.index(word)]])
    assert model.selection_labels(src, tgt).tolist() == [[1.0, 0.0]]


# ---------------------------------------------------------------------------------------------
# fairseq-train + fairseq-generate, two updates each. Each run pairs a pooling option with an
# attention option so that every new value of both flags runs end to end within the time budget.

CLI_RUNS = {
    "hard-topk+strided": ["--encoder-pooling", "hard-topk", "--encoder-attention", "strided"],
    "avg+fixed": ["--encoder-pooling", "avg", "--encoder-attention", "fixed"],
    "max+memory": ["--encoder-pooling", "max", "--encoder-attention", "blockwise-memory"],
    "conv+compressed-memory+reconstruction": [
        "--encoder-pooling", "conv", "--encoder-attention", "blockwise-memory",
        "--memory-compression", "conv", "--criterion", RECONSTRUCTION],
    "dilated-conv+full": ["--encoder-pooling", "dilated-conv", "--encoder-attention", "full"],
    "topk+selection-loss": ["--encoder-pooling", "topk", "--selection-loss", "1",
                            "--criterion", SELECTION],
    "most-used+most-used-memory": [
        "--encoder-pooling", "most-used", "--encoder-attention", "blockwise-memory",
        "--memory-compression", "most-used"],
    "seqpool+capped-memory": [
        "--encoder-pooling", "seqpool", "--encoder-attention", "blockwise-memory",
        "--memory-compression", "avg", "--compressed-memory-chunks", "1"],
}


# fairseq-train then fairseq-generate, in one interpreter: the console scripts' own entry points,
# looked up in the installed distributions' metadata, run with their command lines in sys.argv.
# One process instead of two saves an import of fairseq (~4 s of CPU) per option.
RUN_CONSOLE_SCRIPTS = """
import json, sys
from importlib.metadata import entry_points
scripts = {ep.name: ep for ep in entry_points(group="console_scripts")}
for name, argv in json.loads(sys.argv[1]):
    sys.argv = [name] + argv
    scripts[name].load()()
    sys.stdout.flush()
    print("=== done: " + name, flush=True)
"""


@pytest.mark.parametrize("name", list(CLI_RUNS))
def test_train_and_generate(options_corpus, tmp_path, name):
    flags = CLI_RUNS[name]
    data = str(options_corpus)
    ckpt = tmp_path / "ckpt"
    train = [
        data, "--user-dir", USER_DIR, "--task", "translation", "--arch", "pyramidion_tiny",
        "--source-lang", "src", "--target-lang", "tgt", "--share-all-embeddings",
        "--max-source-positions", "1024", "--optimizer", "adam", "--lr", "1e-3",
        "--max-update", "2", "--batch-size", "8", "--save-dir", str(ckpt),
        "--no-epoch-checkpoints", "--disable-validation", "--num-workers", "0",
        "--log-format", "simple", "--log-interval", "1", "--seed", "1", *flags,
    ]
    generate = [
        data, "--user-dir", USER_DIR, "--task", "translation", "--source-lang", "src",
        "--target-lang", "tgt", "--path", str(ckpt / "checkpoint_last.pt"),
        "--gen-subset", "test-A", "--beam", "2", "--max-len-b", "10", "--batch-size", "4",
        "--num-workers", "0",
    ]
    commands = json.dumps([["fairseq-train", train], ["fairseq-generate", generate]])
    out = run([sys.executable, "-c", RUN_CONSOLE_SCRIPTS, commands], cwd=tmp_path, timeout=300)
    log, _, generated = out.partition("=== done: fairseq-train")
    assert "=== done: fairseq-generate" in generated
    assert "num_updates 2" in log and (ckpt / "checkpoint_last.pt").exists()
    if RECONSTRUCTION in flags:
        assert re.search(r"reconstruction_loss \d", log)
    hyps = re.findall(r"^H-(\d+)\t", generated, re.M)
    assert sorted(map(int, hyps)) == [0, 1, 2, 3]


@pytest.mark.parametrize("flags", [
    ["--encoder-attention", "blockwise-memory", "--memory-compression", "conv",
     "--encoder-pooling", "most-used"],
    ["--encoder-attention", "fixed", "--encoder-pooling", "hard-topk"],
])
def test_activation_checkpointing_wraps_the_layers_and_changes_nothing(options_corpus, flags):
    results = []
    for extra in ([], ["--checkpoint-activations"]):
        model, task, _ = build_model(options_corpus, *flags, *extra)
        assert hasattr(model.encoder.layers[0], "precheckpoint_forward") == bool(extra)
        model.train()
        tokens, src_lengths, prev = model_inputs(task, [300, 130, 20])
        logits, out = model(tokens, src_lengths, prev)
        (logits.float().logsumexp(-1).sum() + out["reconstruction_loss"][0]
         if "reconstruction_loss" in out else logits.float().logsumexp(-1).sum()).backward()
        results.append((logits.detach(), {n: p.grad for n, p in model.named_parameters()}))
    (plain, plain_grads), (checkpointed, checkpointed_grads) = results
    torch.testing.assert_close(checkpointed, plain)
    for name, grad in plain_grads.items():
        torch.testing.assert_close(checkpointed_grads[name], grad, atol=1e-5, rtol=1e-4)


def test_fairseqs_update_count_reaches_the_topk_base_warmup(options_corpus):
    """fairseq's trainer calls model.set_num_updates before every update: the poolers' base
    follows it from 1 to --topk-softmax-base, and evaluation uses the full base throughout."""
    model, _, _ = build_model(options_corpus, "--encoder-pooling", "topk",
                              "--topk-base-warmup", "40", "--topk-scorer-gain", "2.0")
    poolers = [m for m in model.modules() if hasattr(m, "current_base")]
    assert len(poolers) == 2
    model.train()
    for updates, expected in ((0, 1.0), (20, 20.0 ** 0.5), (40, 20.0), (400, 20.0)):
        model.set_num_updates(updates)
        assert [p.current_base() for p in poolers] == pytest.approx([expected] * 2)
    model.set_num_updates(0)
    model.eval()
    assert [p.current_base() for p in poolers] == [20.0, 20.0]
