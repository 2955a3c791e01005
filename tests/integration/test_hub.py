"""Python (deep_pyramidion.hub) and command-line (pyramidion-summarize) summarization of raw text,
with the checkpoint the seed's training command wrote (tests/conftest.py: seed_run)."""
import logging
import subprocess
import sys
from pathlib import Path

import pytest
from fairseq.hub_utils import GeneratorHubInterface

from tests.support.fairseq_runs import LONG_DOC_TOKENS, subprocess_env
from deep_pyramidion.hub import PyramidionHubInterface, from_pretrained
from deep_pyramidion.fairseq_plugin.model import PyramidionModel

HUB_LOGGER = "deep_pyramidion.fairseq_plugin.hub"

CLI = Path(sys.executable).with_name("pyramidion-summarize")
GEN = {"max_len_a": 0, "max_len_b": 6}


def load(seed_run, **kwargs):
    kwargs.setdefault("sentencepiece_model", str(seed_run["spm"]))
    return from_pretrained(str(seed_run["ckpt"].parent), checkpoint_file=seed_run["ckpt"].name,
                           data_name_or_path=str(seed_run["data"]), **kwargs)


def documents(seed_run, split="test-A"):
    return (seed_run["raw"] / f"{split}.src").read_text().splitlines()


@pytest.fixture(scope="module")
def hub(seed_run):
    return load(seed_run)


@pytest.fixture(scope="module")
def word_hub(seed_run):
    """No sentencepiece: the synthetic corpus's words are the dictionary's tokens."""
    return load(seed_run, bpe=None, sentencepiece_model=None)


def test_model_from_pretrained_returns_the_hub(seed_run):
    hub = PyramidionModel.from_pretrained(str(seed_run["ckpt"].parent),
                                          checkpoint_file=seed_run["ckpt"].name,
                                          data_name_or_path=str(seed_run["data"]),
                                          sentencepiece_model=str(seed_run["spm"]))
    assert isinstance(hub, PyramidionHubInterface)
    assert isinstance(hub, GeneratorHubInterface)
    assert hub.bpe is not None and type(hub.bpe).__name__.lower().startswith("sentencepiece")


def test_summarize_returns_one_string_per_input(hub, seed_run):
    texts = documents(seed_run)[1:4] + ["A short plain-English sentence, nothing like the training data."]
    summaries = hub.summarize(texts, beam=2, **GEN)
    assert isinstance(summaries, list) and len(summaries) == len(texts)
    assert all(isinstance(s, str) for s in summaries)
    assert hub.summarize([], beam=2) == []
    single = hub.summarize(texts[0], beam=2, **GEN)  # one str = one document
    assert isinstance(single, list) and len(single) == 1


def test_summaries_follow_input_order(word_hub, seed_run):
    docs = documents(seed_run)[1:5]
    together = word_hub.summarize(docs, beam=1, **GEN)
    alone = [word_hub.summarize([d], beam=1, **GEN)[0] for d in docs[::-1]][::-1]
    assert together == alone


def test_long_input_is_truncated_with_a_warning(word_hub, seed_run, caplog):
    long_doc = documents(seed_run)[0]
    assert len(long_doc.split()) == LONG_DOC_TOKENS
    assert word_hub.max_source_tokens == 2048  # the checkpoint's --max-source-positions
    with caplog.at_level(logging.WARNING, logger=HUB_LOGGER):
        tokens = word_hub.encode_document(long_doc, "doc-0")
        summaries = word_hub.summarize([long_doc, "w1 w2 w3"], beam=1, **GEN)
    assert tokens.numel() == 2048 and int(tokens[-1]) == word_hub.src_dict.eos()
    assert tokens[:-1].tolist() == word_hub.encode(long_doc)[:2047].tolist()
    messages = [r.getMessage() for r in caplog.records]
    assert any("doc-0" in m and f"{LONG_DOC_TOKENS + 1} source tokens" in m and "2048" in m
               for m in messages)
    assert any("texts[0]" in m for m in messages) and not any("texts[1]" in m for m in messages)
    assert len(summaries) == 2


def test_max_source_positions_override_reads_longer_inputs(seed_run, caplog):
    hub = load(seed_run, bpe=None, sentencepiece_model=None, max_source_positions=4096)
    with caplog.at_level(logging.WARNING, logger=HUB_LOGGER):
        tokens = hub.encode_document(documents(seed_run)[0])
    assert tokens.numel() == LONG_DOC_TOKENS + 1
    assert not [r for r in caplog.records if "truncated" in r.getMessage()]


def test_bad_inputs_are_named(hub, seed_run):
    with pytest.raises(ValueError, match=r"texts\[1\] is empty"):
        hub.summarize(["w1 w2", "  \n"], beam=1)
    with pytest.raises(TypeError, match="max_len_bb"):
        hub.summarize(["w1 w2"], beam=1, max_len_bb=3)
    with pytest.raises(ValueError, match="beam"):
        hub.summarize(["w1 w2"], beam=0)
    with pytest.raises(FileNotFoundError, match="sentencepiece_model"):
        load(seed_run, sentencepiece_model=None)  # no spm.model next to the data or checkpoint
    with pytest.raises(FileNotFoundError, match="nope.pt"):
        from_pretrained(str(seed_run["ckpt"].parent), checkpoint_file="nope.pt",
                        data_name_or_path=str(seed_run["data"]), bpe=None)
    with pytest.raises(FileNotFoundError, match="dictionary"):
        from_pretrained(str(seed_run["ckpt"].parent), checkpoint_file=seed_run["ckpt"].name,
                        data_name_or_path=str(seed_run["root"]), bpe=None)


def cli(args, stdin=None):
    assert CLI.exists(), f"{CLI} missing: pip install -e . --no-deps"
    return subprocess.run([str(CLI), *map(str, args)], input=stdin, capture_output=True, text=True,
                          env=subprocess_env(), timeout=300)


def test_cli_keeps_the_line_count(seed_run, tmp_path):
    docs = documents(seed_run)[:3] + ["w5 w6 w7 w8"]
    path = tmp_path / "docs.txt"
    path.write_text("\n".join(docs) + "\n")
    proc = cli(["--checkpoint", seed_run["ckpt"], "--data", seed_run["data"],
                "--sentencepiece-model", seed_run["spm"], "--beam", "1", "--max-len-b", "5", path])
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count("\n") == len(docs)
    # the 3000-word first line is cut to the checkpoint's 2048 positions, and the log says which
    # line; the short last one is not
    assert f"{path}:1:" in proc.stderr and "truncated" in proc.stderr
    assert f"{path}:4:" not in proc.stderr


def test_cli_reads_stdin(seed_run):
    proc = cli(["--checkpoint", seed_run["ckpt"], "--data", seed_run["data"], "--no-bpe",
                "--beam", "1", "--max-len-b", "4", "-"], stdin="w1 w2 w3\nw4 w5\n")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count("\n") == 2


def test_cli_empty_line_is_an_error_naming_it(seed_run, tmp_path):
    path = tmp_path / "docs.txt"
    path.write_text("w1 w2\n\nw3 w4\n")
    proc = cli(["--checkpoint", seed_run["ckpt"], "--data", seed_run["data"], "--no-bpe", path])
    assert proc.returncode == 1
    assert f"{path}:2: empty line" in proc.stderr
    assert proc.stdout == ""
    proc = cli(["--checkpoint", tmp_path / "missing.pt", "--data", seed_run["data"], path])
    assert proc.returncode == 2 and "--checkpoint" in proc.stderr and "missing.pt" in proc.stderr
