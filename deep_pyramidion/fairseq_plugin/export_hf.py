"""``pyramidion-export-hf``: a fairseq-trained pyramidion as a Hugging Face folder.

    pyramidion-export-hf --checkpoint runs/aclsum/checkpoint_best.pt --data data-bin/aclsum hf-out/
    pyramidion-export-hf --checkpoint bart-8k/model.pt --data bart-8k hf-bart-8k/   # pyramidion-convert's

This side reads what only fairseq can read (the checkpoint's arguments, the Dictionary); the
torch-only side (deep_pyramidion/hf/export.py) maps the weights and copies the code. Every refusal
is one line naming the file or the option, and nothing is written: OUT_DIR is built beside its
final place and renamed in only when complete (plumbing/files.py: StagedDir).
"""
import argparse
import logging
import os
from typing import List, Optional

from deep_pyramidion.hf.export import (  # noqa: F401  (GENERATION_DEFAULTS: re-exported)
    AUTO_MAP, GENERATION_DEFAULTS, ExportError, code_files, flat_name, generation_config,
    map_state_dict, mark_remote_code, write_code, write_json,
)
from deep_pyramidion.plumbing.cli import EXIT_OK
from deep_pyramidion.plumbing.errors import DataError
from deep_pyramidion.plumbing.files import StagedDir, check_not_overlapping, owned_by

logger = logging.getLogger("pyramidion-export-hf")

# Options of fairseq's transformer that the adapter's modules do not have: exported, such a model
# would compute something else, so the export refuses it (flag, value that is fine).
UNSUPPORTED = (
    ("adaptive_input", False), ("adaptive_softmax_cutoff", None), ("tie_adaptive_weights", False),
    ("cross_self_attention", False), ("no_cross_attention", False),
    ("no_token_positional_embeddings", False), ("encoder_layers_to_keep", None),
    ("decoder_layers_to_keep", None), ("quant_noise_pq", 0), ("scale_attn", False),
    ("scale_fc", False), ("scale_heads", False), ("scale_resids", False),
    ("layernorm_embedding_decoder_only", False),
)
ACTIVATIONS = ("relu", "relu_squared", "gelu", "gelu_accurate", "gelu_fast", "tanh", "linear")
EXPORT_FILES = owned_by(names=(
    "config.json", "generation_config.json", "model.safetensors", "export.json",
    "fairseq_dict.json", "spm.model", "encoder.json", "vocab.bpe", "tokenizer_config.json",
    "special_tokens_map.json", "added_tokens.json", "chat_template.jinja",
    *(flat_name(m) + ".py" for m in code_files())))


def _get(args, name, default=None):
    return getattr(args, name, default)


def hf_config(args, vocab_size: int, max_source_positions: Optional[int] = None):
    """The PyramidionHFConfig of a checkpoint's fairseq arguments; an option the adapter cannot
    carry raises ExportError naming its flag."""
    from deep_pyramidion.config import PyramidionConfig
    from deep_pyramidion.hf.configuration_pyramidion import (
        TRANSFORMER_DEFAULTS, PyramidionHFConfig, pyramidion_field_defaults,
    )

    arch = _get(args, "arch") or _get(args, "_name")
    if not str(arch).startswith("pyramidion"):
        raise ExportError(f"the checkpoint's architecture is {arch!r}, not a pyramidion "
                          "(--arch pyramidion_*)")
    for name, fine in UNSUPPORTED:
        value = _get(args, name, fine)
        if value not in (fine, None, False, 0, "", "0"):
            raise ExportError(f"--{name.replace('_', '-')} {value}: the Hugging Face export "
                              "cannot carry this option")
    dims = {_get(args, n) for n in ("encoder_embed_dim", "decoder_embed_dim", "decoder_output_dim",
                                    "decoder_input_dim") if _get(args, n) is not None}
    if len(dims) > 1:
        raise ExportError("--encoder-embed-dim / --decoder-embed-dim / --decoder-output-dim / "
                          f"--decoder-input-dim differ ({sorted(dims)}): the export needs one width")
    if _get(args, "activation_fn", "relu") not in ACTIVATIONS:
        raise ExportError(f"--activation-fn {args.activation_fn}: not supported by the export")
    # the resolved values only: the model built from this config validates it (and warns) again
    core = PyramidionConfig.from_namespace(args).validate(log_warnings=False)
    values = {n: getattr(core, n) for n in pyramidion_field_defaults()}
    for name in TRANSFORMER_DEFAULTS:
        if name in ("vocab_size", "final_logits_bias", "arch"):
            continue
        value = _get(args, name)
        if value is not None:
            values[name] = value
    values["activation_dropout"] = _get(args, "activation_dropout", 0.0) or \
        _get(args, "relu_dropout", 0.0) or 0.0
    if max_source_positions is not None:
        if values["encoder_learned_pos"] and max_source_positions > values["max_source_positions"]:
            raise ExportError(f"--max-source-positions {max_source_positions}: the model has "
                              f"{values['max_source_positions']} learned encoder positions")
        values["max_source_positions"] = max_source_positions
    return PyramidionHFConfig(vocab_size=vocab_size, arch=str(arch), **values)


def hf_model(args, state: dict, vocab_size: int, max_source_positions: Optional[int] = None,
             name: str = "the checkpoint"):
    """(the Hugging Face model holding the checkpoint's weights, its state dict, the report of
    every checkpoint tensor), in memory: what export() writes, and what benchmarks compare."""
    from deep_pyramidion.hf.modeling_pyramidion import PyramidionForConditionalGeneration

    config = hf_config(args, vocab_size, max_source_positions)
    mark_remote_code(config)
    weights, report = map_state_dict(state, config)
    model = PyramidionForConditionalGeneration(config)
    missing, unexpected = model.load_state_dict(weights, strict=False)
    tied = set(model.shared_parameters())
    missing = [k for k in missing if k not in tied]
    if missing or unexpected:
        raise ExportError(f"{name}: the export's model lacks {unexpected[:3]} and the checkpoint "
                          f"lacks {missing[:3]}")
    return model.eval(), weights, report


def export(args, state: dict, symbols: List[str], out_dir: str, bpe: dict, force: bool = False,
           max_source_positions: Optional[int] = None, generation: Optional[dict] = None,
           name: str = "the checkpoint") -> dict:
    """Write the export of (fairseq arguments, model state dict, dictionary symbols) to out_dir.
    ``bpe``: {"sentencepiece_model": path} or {"gpt2_encoder_json": ..., "gpt2_vocab_bpe": ...}."""
    from safetensors.torch import save_file

    embed = state.get("encoder.embed_tokens.weight")
    if embed is None:
        raise ExportError(f"{name}: no encoder.embed_tokens.weight; not a pyramidion checkpoint")
    if embed.size(0) != len(symbols):
        raise ExportError(f"{bpe.get('dict_path', 'the dictionary')}: {len(symbols)} entries, but "
                          f"{name}'s embeddings have {embed.size(0)} rows: pass the data folder the "
                          "model was trained with")
    model, weights, report = hf_model(args, state, len(symbols), max_source_positions, name)
    config = model.config
    _check_tokenizer(symbols, bpe)
    if os.path.isdir(out_dir) and os.listdir(out_dir) and not force:
        raise ExportError(f"OUT_DIR {out_dir} is not empty; pass --force to replace it")
    with StagedDir(out_dir, EXPORT_FILES, "OUT_DIR") as stage:
        config.save_pretrained(stage)
        generation_config(config, generation or {}).save_pretrained(stage)
        save_file(weights, os.path.join(stage, "model.safetensors"), metadata={"format": "pt"})
        write_json(os.path.join(stage, "fairseq_dict.json"), symbols)
        _write_tokenizer(stage, bpe, config)
        code = write_code(stage)
        write_json(os.path.join(stage, "export.json"),
                   {"source": name, "tensors": report, "code": code, "arch": config.arch})
    logger.info("wrote %s: %d tensors mapped, %d shared, %d dropped", out_dir,
                *(sum(r["action"] == a for r in report) for a in ("mapped", "shared", "dropped")))
    return {"config": config, "report": report}


def _check_tokenizer(symbols: List[str], bpe: dict) -> None:
    """A BPE whose pieces mostly miss the dictionary is the wrong one (another model's)."""
    if "gpt2_encoder_json" in bpe:
        import json

        with open(bpe["gpt2_encoder_json"], encoding="utf-8") as handle:
            ids = {str(i) for i in json.load(handle).values()}
        pieces, flag = ids, "--gpt2-encoder-json"
    else:
        import sentencepiece

        sp = sentencepiece.SentencePieceProcessor(model_file=bpe["sentencepiece_model"])
        pieces = {sp.id_to_piece(i) for i in range(sp.get_piece_size())}
        flag = "--sentencepiece-model"
    known = len(pieces & set(symbols))
    if known < 0.5 * min(len(pieces), len(symbols) - 4):
        path = bpe.get("gpt2_encoder_json") or bpe.get("sentencepiece_model")
        raise ExportError(f"{flag} {path}: only {known} of its pieces are in the dictionary; it "
                          "is not this model's tokenizer")


def _write_tokenizer(stage: str, bpe: dict, config) -> None:
    import shutil

    from deep_pyramidion.hf.tokenization_pyramidion import PyramidionTokenizer

    files = {}
    for key, name in (("sentencepiece_model", "spm.model"), ("gpt2_encoder_json", "encoder.json"),
                      ("gpt2_vocab_bpe", "vocab.bpe")):
        if key in bpe:
            shutil.copyfile(bpe[key], os.path.join(stage, name))
            files[key] = os.path.join(stage, name)
    tokenizer = PyramidionTokenizer(os.path.join(stage, "fairseq_dict.json"), **files,
                                    model_max_length=config.max_source_positions)
    tokenizer.init_kwargs["auto_map"] = AUTO_MAP["AutoTokenizer"]
    tokenizer.save_pretrained(stage)


# ---------------------------------------------------------------------------------- command line
# The front end (DOC, the parser, main) lives in model_cli.py beside the other model commands, so
# that --help and usage errors come before torch and fairseq are imported; run() is the work.
def run(args) -> int:
    """Export for parsed ``pyramidion-export-hf`` arguments (model_cli.export_hf_main)."""
    check_not_overlapping("OUT_DIR", args.out_dir, [("--checkpoint", args.checkpoint),
                                                    ("--data", args.data)])
    bpe = _find_bpe(args)
    model_args, state = _read_checkpoint(args.checkpoint)
    symbols, dict_path = _read_dictionary(args.data)
    bpe["dict_path"] = dict_path
    generation = {k: getattr(args, k) for k in ("beam", "lenpen", "min_len", "max_len_b",
                                                "no_repeat_ngram_size")}
    export(model_args, state, symbols, os.path.abspath(args.out_dir), bpe, force=args.force,
           max_source_positions=args.max_source_positions, generation=generation,
           name=args.checkpoint)
    return EXIT_OK


def main(argv: Optional[List[str]] = None) -> int:
    from deep_pyramidion.model_cli import export_hf_main

    return export_hf_main(argv)


def _find_bpe(args) -> dict:
    from deep_pyramidion.fairseq_plugin.hub import _bpe_overrides

    bpe = "gpt2" if args.gpt2_encoder_json else \
        "sentencepiece" if args.sentencepiece_model else "auto"
    folders = (os.path.abspath(args.data), os.path.dirname(os.path.abspath(args.checkpoint)))
    try:
        found = _bpe_overrides(bpe, folders, args.sentencepiece_model, args.gpt2_encoder_json,
                               args.gpt2_vocab_bpe)
    except FileNotFoundError as err:
        raise DataError(str(err)) from None
    return {k: v for k, v in found.items() if k != "bpe"}


def _read_checkpoint(path: str):
    """(fairseq model arguments, model state dict) of a checkpoint, by fairseq's own loader."""
    from fairseq import checkpoint_utils

    import deep_pyramidion.fairseq_plugin  # noqa: F401  (the model's registration and patches)

    try:
        state = checkpoint_utils.load_checkpoint_to_cpu(path)
    except Exception as err:  # a truncated or foreign file: fairseq's errors vary
        raise ExportError(f"--checkpoint {path}: cannot be read as a fairseq checkpoint "
                          f"({type(err).__name__}: {err})") from None
    cfg = state.get("cfg")
    model_args = cfg["model"] if cfg is not None and cfg.get("model") is not None else state.get("args")
    if model_args is None or "model" not in state:
        raise ExportError(f"--checkpoint {path}: no model arguments or weights in it")
    return model_args, state["model"]


def _read_dictionary(data: str):
    from fairseq.data import Dictionary

    for name in ("dict.src.txt", "dict.txt"):
        path = os.path.join(data, name)
        if os.path.isfile(path):
            target = os.path.join(data, "dict.tgt.txt")
            symbols = list(Dictionary.load(path).symbols)
            if os.path.isfile(target) and list(Dictionary.load(target).symbols) != symbols:
                raise ExportError(f"{target}: differs from {path}; the export needs the joined "
                                  "dictionary of a model with shared embeddings")
            return symbols, path
    raise DataError(f"--data {data}: no dict.src.txt (the model's dictionary) there")


__all__ = ["export", "generation_config", "hf_config", "hf_model", "main"]

if __name__ == "__main__":
    import sys

    sys.exit(main())
