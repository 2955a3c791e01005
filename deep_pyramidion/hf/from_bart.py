"""A pyramidion from a local Hugging Face BART, without fairseq: ``from_bart``.

The reading, the checks, the dictionary, the position extension (LED's copies of the pretrained
rows) and the initialisation of the new poolers are pyramidion-convert's own functions
(deep_pyramidion/bart.py); only the target differs: the adapter's model instead of a fairseq
checkpoint. One thing fairseq cannot hold is kept here: a non-zero ``final_logits_bias``
(bart-large-cnn has one), which the model adds to its logits as BartForConditionalGeneration does.

    model = PyramidionForConditionalGeneration.from_bart("bart-base/", max_source_positions=8192)
    tokenizer = pyramidion_tokenizer_from_bart("bart-base/", save_to="bart-8k-tok/")
"""
import json
import os
from typing import Optional

import torch

from deep_pyramidion.bart import (
    SCORER_GAIN, SPECIALS, ConversionError, check_bpe_files, default_schedule, init_poolers,
    mapped_weights, read_hf_bart_checked, reconcile_dictionary,
)
from deep_pyramidion.hf.configuration_pyramidion import PyramidionHFConfig
from deep_pyramidion.hf.export import map_state_dict
from deep_pyramidion.limits import check_max_source_positions


def bart_config(bart, max_source_positions: int, schedule: str, hf_config: dict,
                vocab_size: int, **overrides) -> PyramidionHFConfig:
    """The BART family's conventions (fairseq's bart_large_architecture: learned positions,
    layernorm_embedding, post-norm, shared embeddings), the source's sizes and dropouts, the
    pretrained context as the chunk (one chunk = the pretrained attention)."""
    s = bart.sizes
    values = dict(
        vocab_size=vocab_size, encoder_embed_dim=s["encoder_embed_dim"],
        encoder_ffn_embed_dim=s["encoder_ffn_embed_dim"],
        decoder_ffn_embed_dim=s["decoder_ffn_embed_dim"], encoder_layers=s["encoder_layers"],
        decoder_layers=s["decoder_layers"], encoder_attention_heads=s["encoder_attention_heads"],
        decoder_attention_heads=s["decoder_attention_heads"],
        max_source_positions=max_source_positions,
        max_target_positions=s["max_target_positions"], activation_fn=s["activation_fn"],
        no_scale_embedding=s["no_scale_embedding"], encoder_learned_pos=True,
        decoder_learned_pos=True, layernorm_embedding=True, encoder_normalize_before=False,
        decoder_normalize_before=False, share_all_embeddings=True,
        share_decoder_input_output_embed=True, dropout=hf_config.get("dropout", 0.1),
        attention_dropout=hf_config.get("attention_dropout", 0.1),
        activation_dropout=hf_config.get("activation_dropout", 0.0),
        chunk_size=min(bart.positions, 1024), enc_layers_and_token_width=schedule,
        final_logits_bias=bart.final_logits_bias is not None,
        arch="pyramidion_bart_large" if s["encoder_layers"] >= 12 else "pyramidion_bart_base",
    )
    values.update(overrides)
    config = PyramidionHFConfig(**values)
    try:
        config.pyramidion_config(log_warnings=False)   # the model's build warns
    except ValueError as err:
        raise ConversionError(f"{bart.source}: {err} (the model has {s['encoder_layers']} encoder "
                              "layers)") from None
    return config


def from_bart(cls, src_dir: str, max_source_positions: int, schedule: Optional[str] = None,
              seed: int = 1, scorer_gain: float = SCORER_GAIN, **config_overrides):
    """``cls`` (PyramidionForConditionalGeneration) made from the Hugging Face BART in
    ``src_dir``: encoder positions extended to ``max_source_positions``, poolers by ``schedule``
    (default: pyramidion-convert's), their scorers initialised with ``seed`` and ``scorer_gain``
    as pyramidion-convert does; ``config_overrides`` set any other config field (e.g.
    ``encoder_pooling="avg"``, ``dropout=0.0``)."""
    try:
        check_max_source_positions(max_source_positions)
    except ValueError as err:
        raise ConversionError(str(err)) from None
    bart = read_hf_bart_checked(str(src_dir), keep_final_logits_bias=True)
    if max_source_positions < bart.positions:
        raise ConversionError(f"max_source_positions {max_source_positions} is shorter than the "
                              f"pretrained model's {bart.positions} positions")
    check_bpe_files(bart)
    symbols = list(SPECIALS) + reconcile_dictionary(bart)
    with open(os.path.join(src_dir, "config.json"), encoding="utf-8") as handle:
        hf_config = json.load(handle)
    config = bart_config(bart, max_source_positions, schedule or default_schedule(bart),
                         hf_config, len(symbols), **config_overrides)
    torch.manual_seed(seed)
    model = cls(config)
    weights = mapped_weights(bart, max_source_positions)        # fairseq names
    mapped, _ = map_state_dict(weights, config)
    result = model.load_state_dict(mapped, strict=False)
    tied = set(model.shared_parameters())
    # the new parts (poolers, memory compressors) and the bias, filled below
    new = [k for k in result.missing_keys if k not in tied and k != "final_logits_bias"
           and not k.startswith(("model.encoder.poolers.", "model.encoder.attention_pattern."))]
    if new or result.unexpected_keys:
        raise ConversionError(f"{src_dir}: the pyramidion has parameters the source does not "
                              f"fill ({new[:4]}) or the source has ones it lacks "
                              f"({result.unexpected_keys[:4]})")
    init_poolers(model.model, seed, scorer_gain)
    if bart.final_logits_bias is not None:
        with torch.no_grad():
            model.final_logits_bias.copy_(bart.final_logits_bias.reshape(1, -1))
    model.bart_notes = list(bart.notes)
    model.dictionary_symbols = symbols
    return model


def pyramidion_tokenizer_from_bart(src_dir: str, save_to: str):
    """The PyramidionTokenizer of a Hugging Face BART (its vocab.json + merges.txt, the
    dictionary pyramidion-convert would write), saved in ``save_to``: BART's ids, as fairseq's
    --bpe gpt2 pipeline gives them (no <s>, unlike BartTokenizer)."""
    import shutil

    from deep_pyramidion.hf.tokenization_pyramidion import PyramidionTokenizer

    bart = read_hf_bart_checked(str(src_dir), keep_final_logits_bias=True)
    if not bart.bpe_files:
        raise ConversionError(f"{src_dir}: no vocab.json + merges.txt, so no tokenizer")
    check_bpe_files(bart)
    os.makedirs(save_to, exist_ok=True)
    symbols = list(SPECIALS) + reconcile_dictionary(bart)
    with open(os.path.join(save_to, "fairseq_dict.json"), "w", encoding="utf-8") as out:
        json.dump(symbols, out, ensure_ascii=False)
    for source, name in ((bart.bpe_files["encoder.json"], "encoder.json"),
                         (bart.bpe_files["vocab.bpe"], "vocab.bpe")):
        shutil.copyfile(source, os.path.join(save_to, name))
    tokenizer = PyramidionTokenizer(os.path.join(save_to, "fairseq_dict.json"),
                                    gpt2_encoder_json=os.path.join(save_to, "encoder.json"),
                                    gpt2_vocab_bpe=os.path.join(save_to, "vocab.bpe"))
    tokenizer.save_pretrained(save_to)
    return tokenizer


__all__ = ["bart_config", "from_bart", "pyramidion_tokenizer_from_bart"]
