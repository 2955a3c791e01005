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
