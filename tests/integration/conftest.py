"""Session fixtures of the integration tier that several files share, each made once: the copy
task's binarized data at two sizes, the tiny pretrained BARTs (deep_pyramidion/testing/
tiny_bart.py) and their conversions. Every test only reads them."""
import pytest

from tests.support.bart import LONG, make_fairseq_bart, make_hf_bart
from tests.support.corpus import copy_task


@pytest.fixture(scope="session")
def data_bin(tmp_path_factory) -> str:
    """The copy task at its smallest (16 / 4 / 4 documents): for a model built in-process, or a
    fairseq-train of an update or two."""
    return str(copy_task(tmp_path_factory.mktemp("copy-small"), sizes=(16, 4, 4)))


@pytest.fixture(scope="session")
def copy_data(tmp_path_factory):
    """The copy task with 64 training documents of 40-200 tokens: pooling (64 -> 16 tokens) and
    chunking (32) both engage; 8 batches of 8 per epoch."""
    return copy_task(tmp_path_factory.mktemp("copy"), sizes=(64, 8, 6))


@pytest.fixture(scope="session")
def bart_sources(tmp_path_factory):
    root = tmp_path_factory.mktemp("bart")
    return {"fairseq": make_fairseq_bart(root), "huggingface": make_hf_bart(root), "root": root}


@pytest.fixture(scope="session")
def bart_converted(bart_sources):
    from deep_pyramidion.fairseq_plugin.convert import convert

    out = {}
    for kind in ("fairseq", "huggingface"):
        target = bart_sources["root"] / f"converted-{kind}"
        convert(str(bart_sources[kind]), str(target), LONG)
        out[kind] = target
    return out
