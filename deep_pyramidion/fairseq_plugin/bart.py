"""Reading a fairseq BART (model.pt + dict.txt, as fairseq distributes bart.base / bart.large)
and dispatching on the source's kind; everything torch-only (the Hugging Face reading, the checks,
the weight mapping, the new poolers' initialisation) lives in the core, deep_pyramidion/bart.py,
which the Hugging Face adapter's from_bart shares. Every name of that module is available here
too, as before the move."""
import os
from typing import List

from deep_pyramidion import bart as _core
from deep_pyramidion.bart import (  # noqa: F401  (re-exported)
    ACTIVATIONS, FAIRSEQ_CONFIG_KEYS, REQUIRED, ConversionError, PretrainedBart,
    _check_config_sizes, _check_tensor_types, _read_fairseq_dict, _refuse_pyramidion,
    _sizes_from_weights, check_finite, check_layers, check_links, detect, read_hf_bart,
)

# the rest of the core module's names (public and private) as this module's, for callers and
# tests that import them from here
globals().update({k: v for k, v in vars(_core).items()
                  if not k.startswith("__") and k not in globals()})


def read_bart(src_dir: str) -> PretrainedBart:
    """The BART of ``src_dir``, every file read and checked (see the module's docstring); the BPE
    files are checked by :func:`check_bpe_files` once the caller has settled which ones to use."""
    kind = detect(src_dir)
    check_links(src_dir)
    bart = read_fairseq_bart(src_dir) if kind == "fairseq" else read_hf_bart(src_dir)
    check_layers(bart)
    check_finite(bart)
    return bart


# ---------------------------------------------------------------------------------- fairseq
def read_fairseq_bart(src_dir: str) -> PretrainedBart:
    from fairseq import checkpoint_utils

    path = os.path.join(src_dir, "model.pt")
    state = checkpoint_utils.load_checkpoint_to_cpu(path)   # safe loader, clear errors
    if not isinstance(state, dict) or not isinstance(state.get("model"), dict):
        raise ConversionError(f"{path}: not a fairseq checkpoint (no 'model' state dict)")
    weights = dict(state["model"])
    model_cfg = _fairseq_model_cfg(state, path)
    _refuse_pyramidion(path, weights, str(model_cfg.get("arch") or model_cfg.get("_name") or ""))
    missing = [k for k in REQUIRED if k not in weights]
    if missing:
        raise ConversionError(f"{path}: not a BART checkpoint; missing {', '.join(missing)}")
    _check_tensor_types(path, weights)
    notes = []
    for key in [k for k in weights if k.startswith("classification_heads.")]:
        notes.append(f"{key}: a classification head, not part of a summarizer; left out")
        del weights[key]
    weights.pop("decoder.output_projection.weight", None)   # tied to the token embeddings
    weights.pop("encoder.embed_tokens.weight")
    embed = weights.pop("decoder.embed_tokens.weight")
    weights["embed_tokens"] = embed
    sizes = _sizes_from_weights(weights, path)
    for key in ("encoder_attention_heads", "decoder_attention_heads"):
        if model_cfg.get(key) is None:
            raise ConversionError(f"{path}: its configuration does not say {key}")
    _check_config_sizes(f"{path} (its model configuration)", model_cfg, weights, sizes,
                        FAIRSEQ_CONFIG_KEYS, unset_allowed=True)
    for key in ("encoder_attention_heads", "decoder_attention_heads"):
        sizes[key] = model_cfg[key]
    sizes["activation_fn"] = model_cfg.get("activation_fn", "gelu")
    if sizes["activation_fn"] not in ACTIVATIONS:
        raise ConversionError(f"{path}: activation_fn {sizes['activation_fn']!r} is not one of "
                              f"fairseq's ({', '.join(ACTIVATIONS)})")
    for flag, bart_value in (("encoder_normalize_before", False), ("decoder_normalize_before", False),
                             ("no_scale_embedding", True), ("layernorm_embedding", True)):
        if model_cfg.get(flag, bart_value) != bart_value:
            raise ConversionError(f"{path}: {flag}={model_cfg.get(flag)}, but a BART has "
                                  f"{bart_value} (an mBART or another model?)")
    symbols = _read_fairseq_dict(os.path.join(src_dir, "dict.txt"))
    bpe = {name: os.path.join(src_dir, name) for name in ("encoder.json", "vocab.bpe")
           if os.path.isfile(os.path.join(src_dir, name))}
    if len(bpe) < 2:
        notes.append(f"{src_dir} holds no encoder.json + vocab.bpe (fairseq's BART archives do not "
                     "ship GPT-2's BPE files): pass them with --encoder-json / --vocab-bpe, or give "
                     "them to scripts/preprocess.py later")
        bpe = {}
    return PretrainedBart("fairseq", src_dir, weights, sizes, symbols, bpe, notes)


def _fairseq_model_cfg(state, path) -> dict:
    cfg = state.get("cfg")
    if cfg is not None and cfg.get("model") is not None:
        model = cfg["model"]
        return dict(model.items()) if hasattr(model, "items") else vars(model)
    if state.get("args") is not None:
        return vars(state["args"])
    raise ConversionError(f"{path}: no model configuration (neither 'cfg' nor 'args')")


__all__ = list(_core.__all__) + ["read_bart", "read_fairseq_bart"]
