"""Where the config's names and checks come from: the registries are the one list of attention
patterns and poolers (a pooler's class declares its traits), validate() holds every check, the
converter's model flags are the config's, and the released names have readable aliases."""
import argparse
import dataclasses
import subprocess
import sys

import pytest
import torch

from deep_pyramidion import config as config_module
from deep_pyramidion.config import (
    RECONSTRUCTION_CRITERION, SELECTION_CRITERION, PyramidionConfig,
)
from deep_pyramidion.errors import ConfigError
from deep_pyramidion.modules import ATTENTION_PATTERNS, POOLERS, build_pooler
from deep_pyramidion.modules.poolers.registry import Pooled, Pooler, register_pooler


def test_the_name_lists_are_the_registries():
    assert config_module.ENCODER_ATTENTIONS == tuple(ATTENTION_PATTERNS)
    assert config_module.POOLINGS == tuple(POOLERS)
    # registration order is the order the help and the errors list them in
    assert config_module.ENCODER_ATTENTIONS[0] == "blockwise"
    assert config_module.POOLINGS[:2] == ("topk", "hard-topk")


def test_the_trait_lists_are_read_from_the_pooler_classes():
    for trait, listed in (("needs_usage", config_module.USAGE_POOLINGS),
                          ("trainable", config_module.TRAINABLE_POOLINGS),
                          ("has_scorer", config_module.SCORER_POOLINGS)):
        assert listed == tuple(n for n, cls in POOLERS.items() if getattr(cls, trait))
    assert config_module.USAGE_POOLINGS == ("most-used",)
    assert config_module.SCORER_POOLINGS == ("topk", "hard-topk")


@pytest.mark.parametrize("name", sorted(POOLERS))
def test_a_pooler_s_traits_say_what_it_is(name):
    config = PyramidionConfig().validate()
    pooler = build_pooler(name, 8, 4, config)
    assert type(pooler).trainable == any(p.requires_grad for p in pooler.parameters())
    assert type(pooler).has_scorer == hasattr(pooler, "scorer")


def test_a_registered_pooler_is_accepted_without_editing_the_config():
    @register_pooler("test-first-token")
    class FirstToken(Pooler):
        def forward(self, x, mask, usage=None, with_assignment=False):
            return Pooled(x[:, :1], mask[:, :1])

    try:
        config = PyramidionConfig(encoder_pooling="test-first-token").validate()
        assert "test-first-token" in config_module.POOLINGS
        assert config.pooling == "test-first-token"
        parser = argparse.ArgumentParser()
        PyramidionConfig.add_args(parser)
        helps = {a.option_strings[0]: a.help for a in parser._actions if a.option_strings}
        assert "test-first-token" in helps["--encoder-pooling"]
        assert "test-first-token" in helps["--memory-compression"]
    finally:
        del POOLERS["test-first-token"]
    with pytest.raises(ConfigError, match="--encoder-pooling: unknown value 'test-first-token'"):
        PyramidionConfig(encoder_pooling="test-first-token").validate()


def test_importing_the_config_imports_no_torch():
    """The commands build their parsers from it (``--help`` stays quick); the registries are
    read only when a name is asked for."""
    code = ("import sys\nimport deep_pyramidion.config as c\n"
            "c.PyramidionConfig.add_flag(__import__('argparse').ArgumentParser(), "
            "'enc_layers_and_token_width')\n"
            "print('torch' in sys.modules, 'fairseq' in sys.modules)\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["False", "False"]


def test_the_config_keeps_no_module_global_state_for_its_warnings(caplog):
    assert not hasattr(config_module, "_warned")
    for _ in range(2):   # a second build of the same options warns again
        with caplog.at_level("WARNING", logger="deep_pyramidion.config"):
            PyramidionConfig(max_source_positions=1024).validate()
    assert sum("layer 0 keeps 2048 tokens" in r.getMessage() for r in caplog.records) == 2
    caplog.clear()
    with caplog.at_level("WARNING", logger="deep_pyramidion.config"):
        PyramidionConfig(max_source_positions=1024).validate(log_warnings=False)
    assert not caplog.records


@pytest.mark.parametrize("criterion, flags, needle", [
    (RECONSTRUCTION_CRITERION, {}, "--memory-compression"),
    (RECONSTRUCTION_CRITERION, {"encoder_attention": "blockwise-memory",
                                "memory_compression": "avg"}, "trainable --memory-compression"),
    (SELECTION_CRITERION, {}, "--selection-loss 1"),
])
def test_a_criterion_whose_term_the_model_would_not_compute_is_refused(criterion, flags, needle):
    with pytest.raises(ConfigError, match=f"--criterion {criterion} needs a model .*{needle}"):
        PyramidionConfig(**flags).validate(criterion=criterion)


@pytest.mark.parametrize("criterion, flags", [
    (RECONSTRUCTION_CRITERION, {"encoder_attention": "blockwise-memory",
                                "memory_compression": "conv"}),
    (SELECTION_CRITERION, {"selection_loss": 1, "encoder_pooling": "hard-topk"}),
    ("label_smoothed_cross_entropy", {}),
    (None, {}),
])
def test_a_criterion_whose_term_the_model_computes_is_accepted(criterion, flags):
    PyramidionConfig(**flags).validate(criterion=criterion)


def test_the_converter_s_model_flags_are_the_config_s():
    from deep_pyramidion.model_cli import _convert

    fields = {f.name: f for f in dataclasses.fields(PyramidionConfig)}
    parser = argparse.ArgumentParser()
    PyramidionConfig.add_flag(parser, "enc_layers_and_token_width", note="here")
    PyramidionConfig.add_flag(parser, "max_source_positions", required=True)
    actions = {a.dest: a for a in parser._actions}
    for name in ("enc_layers_and_token_width", "max_source_positions"):
        meta = fields[name].metadata
        assert actions[name].option_strings == [meta["flag"]]
        assert actions[name].type is meta["type"] and actions[name].metavar == meta["metavar"]
        assert actions[name].help.startswith(meta["help"])
    assert actions["enc_layers_and_token_width"].help.endswith("; here")
    assert actions["max_source_positions"].required
    with pytest.raises(SystemExit) as exit_info:
        _convert(["--help"])
    assert exit_info.value.code == 0


def test_the_released_names_have_aliases_that_say_what_they_do():
    config = PyramidionConfig(enc_layers_and_token_width="{0: 8}", sort_back=0,
                              flip_right=1).validate()
    assert config.schedule_text == "{0: 8}" and config.schedule == {0: 8}
    assert config.keep_document_order is False and config.pair_best_with_worst is True
    pooler = build_pooler("topk", 8, 4, config)
    assert (pooler.flip_right, pooler.sort_back) == (True, False)
    assert torch.is_tensor(pooler(torch.randn(1, 6, 8), torch.zeros(1, 6, dtype=torch.bool)).x)
