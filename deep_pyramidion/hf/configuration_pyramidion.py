"""The Hugging Face configuration of a pyramidion: every ``PyramidionConfig`` option plus the
transformer's sizes and conventions, for both families the project trains.

    fairseq transformer (pyramidion_base / _deep / _tiny)   BART family (pyramidion_bart_*)
    sinusoidal positions, numbered from pad + 1             learned positions, offset 2 (= pad + 1)
    embeddings scaled by sqrt(d_model)                      not scaled
    pre- or post-norm (--encoder-normalize-before)          post-norm
    no layer norm after the embeddings                      layernorm_embedding
    ReLU (or --activation-fn)                               GELU

The names are fairseq's flags with dashes as underscores (``encoder_ffn_embed_dim``, ...), so an
exported config reads like the checkpoint's arguments; the names transformers looks for
(``hidden_size``, ``num_hidden_layers``, ...) are aliases (``attribute_map``). The pyramidion's own
options are not listed here by hand: every field of ``PyramidionConfig`` becomes an attribute with
that field's default, so an option added to the core is carried without touching this file.
"""
import dataclasses

from transformers import PretrainedConfig

from deep_pyramidion.config import PyramidionConfig

# The transformer's options and their defaults (fairseq's transformer base_architecture, with the
# pyramidion_base sizes). An exported config always sets every one of them from the checkpoint.
TRANSFORMER_DEFAULTS = dict(
    vocab_size=1000,
    encoder_embed_dim=512,
    encoder_ffn_embed_dim=2048,
    encoder_attention_heads=8,
    decoder_layers=2,
    decoder_ffn_embed_dim=2048,
    decoder_attention_heads=8,
    max_target_positions=1024,
    activation_fn="relu",
    dropout=0.1,
    attention_dropout=0.0,
    activation_dropout=0.0,
    decoder_layerdrop=0.0,
    encoder_normalize_before=False,
    decoder_normalize_before=False,
    no_decoder_final_norm=False,
    encoder_learned_pos=False,
    decoder_learned_pos=False,
    layernorm_embedding=False,
    no_scale_embedding=False,
    share_all_embeddings=True,
    share_decoder_input_output_embed=True,
    # a Hugging Face BART's final_logits_bias (fairseq has no such parameter; from_bart keeps it)
    final_logits_bias=False,
    # training only, with selection_loss=1: the weight of the token scorers' selection loss in
    # the loss forward() returns (fairseq: the criterion's --selection-weight; the exporter
    # takes it from the checkpoint's arguments where they hold it)
    selection_weight=1.0,
    # the exporter's record of the fairseq architecture the checkpoint was trained with
    arch=None,
)
# fairseq's dictionary: <s>=0, <pad>=1, </s>=2, <unk>=3; the decoder starts from </s>
SPECIAL_IDS = dict(bos_token_id=0, pad_token_id=1, eos_token_id=2, unk_token_id=3,
                   decoder_start_token_id=2)


def pyramidion_field_defaults():
    """{name: default} of every PyramidionConfig field (the core's options, whatever they are)."""
    out = {}
    for f in dataclasses.fields(PyramidionConfig):
        if f.default is not dataclasses.MISSING:
            out[f.name] = f.default
        elif f.default_factory is not dataclasses.MISSING:  # pragma: no cover  (none today)
            out[f.name] = f.default_factory()
    return out


class PyramidionHFConfig(PretrainedConfig):
    """``model_type = "pyramidion"``; ``PyramidionHFConfig(**fairseq_args)`` keeps what it knows."""

    model_type = "pyramidion"
    keys_to_ignore_at_inference = ["cache"]
    attribute_map = {
        "hidden_size": "encoder_embed_dim",
        "d_model": "encoder_embed_dim",
        "num_hidden_layers": "decoder_layers",
        "num_attention_heads": "decoder_attention_heads",
        "max_position_embeddings": "max_target_positions",
    }

    def __init__(self, **kwargs):
        values = {**TRANSFORMER_DEFAULTS, **pyramidion_field_defaults()}
        for name in values:
            if name in kwargs:
                values[name] = kwargs.pop(name)
        for name, value in values.items():
            setattr(self, name, value)
        self.use_cache = kwargs.pop("use_cache", True)
        for name, value in SPECIAL_IDS.items():
            kwargs.setdefault(name, value)
        kwargs.setdefault("is_encoder_decoder", True)
        kwargs.setdefault("tie_word_embeddings", bool(values["share_decoder_input_output_embed"]))
        super().__init__(**kwargs)

    # ------------------------------------------------------------------ views
    def pyramidion_config(self, log_warnings: bool = True) -> PyramidionConfig:
        """The core's options, validated (raises ConfigError naming the flag); log_warnings=False
        for a check ahead of the build, which validates again and warns then."""
        names = [f.name for f in dataclasses.fields(PyramidionConfig)]
        return PyramidionConfig(**{n: getattr(self, n) for n in names}).validate(
            log_warnings=log_warnings)

    @property
    def family(self) -> str:
        """"bart" for the BART conventions (learned positions + layernorm_embedding), else
        "transformer" (informational: every convention is its own option)."""
        return "bart" if self.encoder_learned_pos and self.layernorm_embedding else "transformer"

    @property
    def embed_scale(self) -> float:
        return 1.0 if self.no_scale_embedding else float(self.encoder_embed_dim) ** 0.5

    @property
    def encoder_final_norm(self) -> bool:
        # fairseq: the encoder has a final layer norm exactly when its layers are pre-norm
        return bool(self.encoder_normalize_before)

    @property
    def decoder_final_norm(self) -> bool:
        return bool(self.decoder_normalize_before) and not self.no_decoder_final_norm


__all__ = ["PyramidionHFConfig", "TRANSFORMER_DEFAULTS", "pyramidion_field_defaults"]
