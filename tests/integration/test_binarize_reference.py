"""Preprocessing writes the same bytes as the code that recorded tests/data/binarize_reference/
(expected.json names the commit): a 32-document ACLSum subset binarized from scratch
(sentencepiece), with that model reused in 2 worker processes, and with a byte-level BPE and
fairseq dictionary as --pretrained takes them (1 and 2 workers). Every file each run writes is
compared by sha256 (tests/support/binarize_reference.py says which are normalised for paths);
a failure names the run and the files that differ, are missing or are new."""
import json

import pytest

from tests.support.binarize_reference import EXPECTED, inputs_digest, run_all

RECORDED = json.loads(EXPECTED.read_text())


def test_the_recorded_inputs_are_unchanged():
    changed = sorted(name for name, digest in RECORDED["inputs"].items() if inputs_digest().get(name) != digest)
    assert not changed, f"inputs changed since expected.json was recorded: {changed}"


@pytest.fixture(scope="module")
def digests(tmp_path_factory):
    return run_all(tmp_path_factory.mktemp("binarize-reference"))


@pytest.mark.parametrize("run", sorted(RECORDED["runs"]))
def test_every_output_file_is_byte_identical_to_the_reference(digests, run):
    expected, got = RECORDED["runs"][run], digests[run]
    missing = sorted(set(expected) - set(got))
    new = sorted(set(got) - set(expected))
    differ = sorted(name for name in set(expected) & set(got) if expected[name] != got[name])
    assert not (missing or new or differ), (
        f"run {run!r} (made with {RECORDED['made_with_commit'][:10]}): differ {differ}, missing {missing}, "
        f"new {new}")


def test_pretrained_preprocessing_names_the_tokens_that_become_unk(tmp_path, caplog):
    """The reference BPE's dict.txt leaves out its 5 rarest tokens: preprocessing says how many
    tokens became <unk> and which ones, with their text, instead of only a share."""
    import ast
    import logging

    from deep_pyramidion.data.cli import preprocess_main
    from tests.support.binarize_reference import runs

    name, argv = [r for r in runs(tmp_path) if r[0] == "pretrained-1-worker"][0]
    with caplog.at_level(logging.WARNING):
        assert preprocess_main(argv) == 0
    warning = [r.getMessage() for r in caplog.records if "become <unk>" in r.getMessage()]
    assert len(warning) == 1, caplog.text
    encoder = json.loads((EXPECTED.parent / "bart" / "encoder.json").read_text())
    listed = warning[0].split("the most frequent: ", 1)[1].split(", ")
    assert 1 <= len(listed) <= 10
    for entry in listed:                      # "<id> '<bpe text>' x<count>"
        token_id, text, count = entry.split(" ", 2)[0], entry.split(" ")[1], entry.rsplit(" x", 1)[1]
        assert encoder[ast.literal_eval(text)] == int(token_id) and int(count) >= 1
