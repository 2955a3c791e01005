"""Session fixtures of the integration tier that several files share: the tiny pretrained BARTs
(tests/support/bart.py) and their conversions, made once."""
import pytest

from tests.support.bart import LONG, make_fairseq_bart, make_hf_bart


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
