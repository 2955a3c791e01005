"""PyramidionConfig (config.py): one place for every option's default, flag and check."""
import argparse
import dataclasses
import math

import pytest
from hypothesis import given, settings, strategies as st

from deep_pyramidion.config import ENCODER_ATTENTIONS, POOLINGS, PyramidionConfig
from deep_pyramidion.errors import ConfigError
from deep_pyramidion.modules import ATTENTION_PATTERNS, POOLERS


def test_defaults_are_the_papers():
    config = PyramidionConfig().validate()
    assert (config.attention, config.pooling) == ("blockwise", "topk")
    assert config.schedule == {0: 2048, 1: 512}
    assert (config.chunk_size, config.topk_softmax_base, config.sort_back, config.flip_right) == \
        (512, 20.0, 1, 1)


def test_every_option_name_is_implemented():
    assert set(ENCODER_ATTENTIONS) == set(ATTENTION_PATTERNS)
    assert set(POOLINGS) == set(POOLERS)


@pytest.mark.parametrize("legacy, attention, pooling, schedule", [
    ("pooler", "blockwise", "topk", {0: 2048, 1: 512}),
    ("only_blockwise", "blockwise", "none", {}),
    ("pooler_no_block", "full", "topk", {0: 2048, 1: 512}),
])
def test_legacy_sparse_attn_resolves(legacy, attention, pooling, schedule):
    config = PyramidionConfig(use_sparse_attn=legacy).validate()
    assert (config.encoder_attention, config.encoder_pooling, config.schedule) == \
        (attention, pooling, schedule)
    assert config.validate() == config                       # idempotent


def test_lambda_is_none_and_keeps_every_token():
    config = PyramidionConfig(encoder_pooling="lambda").validate()
    assert config.pooling == "none" and config.schedule == {}


def test_conflicting_legacy_and_new_attention_flags_name_both():
    with pytest.raises(ValueError, match="--use-sparse-attn pooler_no_block.*--encoder-attention strided"):
        PyramidionConfig(use_sparse_attn="pooler_no_block", encoder_attention="strided").validate()


@pytest.mark.parametrize("field, value, flag", [
    ("chunk_size", 0, "--chunk-size"),
    ("chunk_size", 2.5, "--chunk-size"),
    ("attention_stride", -1, "--attention-stride"),
    ("fixed_summary_cells", 0, "--fixed-summary-cells"),
    ("memory_compression_rate", 0, "--memory-compression-rate"),
    ("compressed_memory_chunks", -1, "--compressed-memory-chunks"),
    ("compression_taps", 0, "--compression-taps"),
    ("topk_softmax_base", 1.0, "--topk-softmax-base"),
    ("topk_softmax_base", math.nan, "--topk-softmax-base"),
    ("topk_softmax_base", math.inf, "--topk-softmax-base"),
    ("topk_impl", "cuda", "--topk-impl"),
    ("encoder_attention", "dense", "--encoder-attention"),
    ("encoder_pooling", "mean", "--encoder-pooling"),
    ("encoder_pooling_arch", "mlp", "--encoder-pooling-arch"),
    ("memory_compression", "zip", "--memory-compression"),
    ("enc_layers_and_token_width", "{0: 64, 5: 16}", "--enc-layers-and-token-width"),
    ("use_sparse_attn", "sparse", "--use-sparse-attn"),
])
def test_bad_values_name_the_flag(field, value, flag):
    with pytest.raises(ValueError, match=flag):
        PyramidionConfig(**{field: value}).validate()


def test_cross_option_checks():
    with pytest.raises(ValueError, match="--memory-compression conv needs --encoder-attention"):
        PyramidionConfig(memory_compression="conv").validate()
    with pytest.raises(ValueError, match="--fixed-summary-cells 5 exceeds --attention-stride 4"):
        PyramidionConfig(encoder_attention="fixed", attention_stride=4,
                         fixed_summary_cells=5).validate()
    with pytest.raises(ValueError, match="--encoder-layerdrop"):
        PyramidionConfig(encoder_pooling="most-used", encoder_layerdrop=0.1).validate()


def test_namespace_round_trip_and_architecture_defaults():
    args = argparse.Namespace(chunk_size=64, encoder_layers=4)
    PyramidionConfig.fill_defaults(args, enc_layers_and_token_width="{0: 32}")
    assert args.chunk_size == 64                              # given: kept
    assert args.enc_layers_and_token_width == "{0: 32}"       # the architecture's default
    assert args.flip_right == 1                               # the config's default
    config = PyramidionConfig.from_namespace(args).validate()
    assert config.encoder_layers == 4 and config.schedule == {0: 32}
    out = argparse.Namespace()
    config.write_to(out)
    assert PyramidionConfig.from_namespace(out) == dataclasses.replace(
        config, encoder_layers=2, encoder_layerdrop=0.0, max_source_positions=1024)


def test_flags_come_from_the_config_with_its_defaults_in_the_help():
    parser = argparse.ArgumentParser(argument_default=argparse.SUPPRESS)
    PyramidionConfig.add_args(parser)
    own = PyramidionConfig.own_fields()
    flags = {f.metadata["flag"] for f in own}
    assert flags == {a.option_strings[0] for a in parser._actions if a.option_strings[1:] == []
                     and a.option_strings[0] != "-h"}
    args = parser.parse_args(["--chunk-size", "32", "--topk-softmax-base", "4.5",
                              "--sort-back", "0"])
    assert vars(args) == {"chunk_size": 32, "topk_softmax_base": 4.5, "sort_back": 0}
    helps = {a.option_strings[0]: a.help for a in parser._actions}
    assert "(default: 512)" in helps["--chunk-size"]
    assert "(default: 20.0)" in helps["--topk-softmax-base"]
    with pytest.raises(SystemExit):
        parser.parse_args(["--sort-back", "2"])


def test_legacy_flag_that_would_drop_an_explicit_pooler_is_an_error():
    with pytest.raises(ValueError, match="--use-sparse-attn only_blockwise means --encoder-pooling "
                                         "none, but --encoder-pooling topk was given"):
        PyramidionConfig(use_sparse_attn="only_blockwise", encoder_pooling="topk").validate()
    # the names of "no pooling" agree with it
    for same in (None, "none", "lambda"):
        PyramidionConfig(use_sparse_attn="only_blockwise", encoder_pooling=same).validate()


def test_schedule_without_pooling_is_reported_not_applied(caplog):
    with caplog.at_level("WARNING", logger="deep_pyramidion.config"):
        config = PyramidionConfig(encoder_pooling="none",
                                  enc_layers_and_token_width="{0: 99, 1: 33}").validate()
    assert config.schedule == {}
    assert any("{0: 99, 1: 33} is not applied" in r.getMessage() for r in caplog.records)
    caplog.clear()
    with caplog.at_level("WARNING", logger="deep_pyramidion.config"):
        PyramidionConfig(encoder_pooling="none", enc_layers_and_token_width="{}").validate()
    assert not caplog.records


def test_a_layer_listed_twice_is_an_error():
    with pytest.raises(ValueError, match="layer 0 is listed twice"):
        PyramidionConfig(enc_layers_and_token_width="{0: 64, 0: 16}").validate()


NUMERIC = {f.name: f for f in dataclasses.fields(PyramidionConfig)
           if f.metadata["owner"] == "pyramidion" and f.metadata.get("type") in (int, float)}


@settings(max_examples=300, deadline=None)
@given(name=st.sampled_from(sorted(NUMERIC)),
       value=st.one_of(st.integers(-10**12, 10**12), st.floats(allow_nan=True, allow_infinity=True),
                       st.booleans()))
def test_every_numeric_option_is_checked_for_type_finiteness_and_range(name, value):
    """Either the value is accepted and usable (finite, in range) or a ConfigError names the
    flag; nothing else escapes."""
    try:
        config = PyramidionConfig(**{name: value, "encoder_attention": "blockwise"}).validate()
    except ConfigError as err:
        assert NUMERIC[name].metadata["flag"] in str(err)
        return
    accepted = getattr(config, name)
    assert not isinstance(accepted, bool)
    assert math.isfinite(accepted)
    if name == "topk_softmax_base":
        assert accepted > 1
    elif name in ("sort_back", "flip_right"):
        assert accepted in (0, 1)
    else:
        assert accepted >= 0


def test_max_source_positions_is_bounded_before_any_allocation():
    from deep_pyramidion.limits import MAX_SOURCE_POSITIONS
    PyramidionConfig(max_source_positions=MAX_SOURCE_POSITIONS).validate()
    with pytest.raises(ValueError, match="--max-source-positions 100000000: at most"):
        PyramidionConfig(max_source_positions=100_000_000).validate()
