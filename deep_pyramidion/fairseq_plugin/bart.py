"""Reading a pretrained BART, from fairseq's release files or from a Hugging Face folder.

Both sources become one :class:`PretrainedBart`: the weights under fairseq's names, the sizes, the
dictionary (the symbol of every fairseq index) and the BPE files. Everything a source holds is
either mapped or listed in ``PretrainedBart.notes`` by name, with the reason; nothing is dropped
silently. Facts this relies on (../shared/design.md section 6):

- fairseq's learned positions have ``max_positions + padding_idx + 1`` rows (1026 for 1024, padding
  index 1): real tokens are numbered from 2. Hugging Face's ``BartLearnedPositionalEmbedding`` has
  the same rows with the same offset of 2, so the tables are the same tensor.
- Hugging Face ids ``<s>``=0, ``<pad>``=1, ``</s>``=2, ``<unk>``=3, as fairseq's dictionary: here
  fairseq index i is Hugging Face id i, and the dictionary's symbol for index i is ``str(i)`` (the
  form fairseq's ``--bpe gpt2`` decodes with ``--gpt2-encoder-json`` = the model's vocab.json).
- Key names: Hugging Face's ``model.encoder.layers.N.self_attn.q_proj`` is fairseq's
  ``encoder.layers.N.self_attn.q_proj``; ``model.shared`` / ``lm_head`` are the shared embedding;
  ``final_logits_bias`` has no fairseq counterpart.
"""
import json
import logging
import os
import re
from dataclasses import dataclass, field
from typing import Dict, List

import torch

from deep_pyramidion.errors import PyramidionError

logger = logging.getLogger(__name__)

SPECIALS = ("<s>", "<pad>", "</s>", "<unk>")   # fairseq's indices 0..3
MASK = "<mask>"
# one layer of each kind is enough to recognise a BART; the rest is checked layer by layer
REQUIRED = (
    "encoder.embed_tokens.weight", "encoder.embed_positions.weight",
    "encoder.layernorm_embedding.weight", "encoder.layernorm_embedding.bias",
    "encoder.layers.0.self_attn.q_proj.weight", "encoder.layers.0.fc1.weight",
    "decoder.embed_positions.weight", "decoder.layernorm_embedding.weight",
    "decoder.layers.0.self_attn.q_proj.weight", "decoder.layers.0.encoder_attn.q_proj.weight",
)
LAYER_PARTS = {
    "encoder": ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.out_proj",
                "self_attn_layer_norm", "fc1", "fc2", "final_layer_norm"),
    "decoder": ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.out_proj",
                "self_attn_layer_norm", "encoder_attn.q_proj", "encoder_attn.k_proj",
                "encoder_attn.v_proj", "encoder_attn.out_proj", "encoder_attn_layer_norm", "fc1",
                "fc2", "final_layer_norm"),
}


class ConversionError(PyramidionError):
    """The source cannot become a pyramidion; the message names the file and what is wrong."""


@dataclass
class PretrainedBart:
    kind: str                                  # "fairseq" or "huggingface"
    source: str                                # the folder
    weights: Dict[str, torch.Tensor]           # fairseq names, without the embeddings' copies
    sizes: Dict[str, object]                   # fairseq flag names -> values
    symbols: List[str]                         # dictionary symbol of index 4, 5, ...
    bpe_files: Dict[str, str] = field(default_factory=dict)   # encoder.json / vocab.bpe -> path
    notes: List[str] = field(default_factory=list)            # what was done, by name

    @property
    def positions(self) -> int:
        """Pretrained source length: rows of the position table minus the offset of 2."""
        return self.weights["encoder.embed_positions.weight"].size(0) - 2


def detect(src_dir: str) -> str:
    """"fairseq" (model.pt + dict.txt) or "huggingface" (config.json + weights), by the files."""
    if not os.path.isdir(src_dir):
        raise ConversionError(f"{src_dir}: no such folder")
    names = set(os.listdir(src_dir))
    if {"model.pt", "dict.txt"} <= names:
        return "fairseq"
    if "config.json" in names:
        return "huggingface"
    raise ConversionError(
        f"{src_dir}: neither a fairseq BART (model.pt + dict.txt, as in bart.base.tar.gz) nor a "
        f"Hugging Face BART (config.json + model.safetensors or pytorch_model.bin); found "
        f"{', '.join(sorted(names)[:8]) or 'nothing'}")


def read_bart(src_dir: str) -> PretrainedBart:
    kind = detect(src_dir)
    bart = read_fairseq_bart(src_dir) if kind == "fairseq" else read_hf_bart(src_dir)
    check_layers(bart)
    return bart


# ---------------------------------------------------------------------------------- fairseq
def read_fairseq_bart(src_dir: str) -> PretrainedBart:
    from fairseq import checkpoint_utils

    path = os.path.join(src_dir, "model.pt")
    state = checkpoint_utils.load_checkpoint_to_cpu(path)   # safe loader, clear errors
    if not isinstance(state, dict) or not isinstance(state.get("model"), dict):
        raise ConversionError(f"{path}: not a fairseq checkpoint (no 'model' state dict)")
    weights = dict(state["model"])
    missing = [k for k in REQUIRED if k not in weights]
    if missing:
        raise ConversionError(f"{path}: not a BART checkpoint; missing {', '.join(missing)}")
    model_cfg = _fairseq_model_cfg(state, path)
    notes = []
    for key in [k for k in weights if k.startswith("classification_heads.")]:
        notes.append(f"{key}: a classification head, not part of a summarizer; left out")
        del weights[key]
    weights.pop("decoder.output_projection.weight", None)   # tied to the token embeddings
    weights.pop("encoder.embed_tokens.weight")
    embed = weights.pop("decoder.embed_tokens.weight")
    weights["embed_tokens"] = embed
    sizes = _sizes_from_weights(weights)
    for ours, theirs in (("encoder_attention_heads", "encoder_attention_heads"),
                         ("decoder_attention_heads", "decoder_attention_heads")):
        value = model_cfg.get(theirs)
        if not isinstance(value, int):
            raise ConversionError(f"{path}: its configuration does not say {theirs}")
        sizes[ours] = value
    sizes["activation_fn"] = model_cfg.get("activation_fn", "gelu")
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


def _read_fairseq_dict(path: str) -> List[str]:
    """Symbols of a fairseq dict.txt in index order (index 4 first), flags kept out."""
    symbols = []
    try:
        with open(path, encoding="utf-8") as handle:
            for lineno, line in enumerate(handle, 1):
                line = line.rstrip("\n").rstrip("\r")
                if not line.strip():
                    continue
                parts = line.rsplit(" ", 1)
                if len(parts) == 2 and parts[1] == "#fairseq:overwrite":
                    parts = parts[0].rsplit(" ", 1)
                if len(parts) != 2 or not parts[1].lstrip("-").isdigit():
                    raise ConversionError(f"{path}:{lineno}: not a fairseq dictionary line "
                                          f"('<symbol> <count>'): {line[:60]!r}")
                symbols.append(parts[0])
    except FileNotFoundError:
        raise ConversionError(f"{path}: dictionary not found") from None
    except UnicodeDecodeError as err:
        raise ConversionError(f"{path}: not UTF-8 text ({err})") from None
    return symbols


# ---------------------------------------------------------------------------------- Hugging Face
_HF_PREFIXES = ("model.", "")


def read_hf_bart(src_dir: str) -> PretrainedBart:
    config_path = os.path.join(src_dir, "config.json")
    try:
        with open(config_path, encoding="utf-8") as handle:
            config = json.load(handle)
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ConversionError(f"{config_path}: not a JSON configuration ({err})") from None
    if not isinstance(config, dict) or config.get("model_type") != "bart":
        kind = config.get("model_type") if isinstance(config, dict) else type(config).__name__
        raise ConversionError(f"{config_path}: model_type is {kind!r}, not 'bart'; only BART "
                              "models convert")
    for flag in ("add_final_layer_norm", "normalize_before"):   # mBART's options
        if config.get(flag):
            raise ConversionError(f"{config_path}: {flag} is true (an mBART?); BART has none")
    raw = _load_hf_weights(src_dir)
    prefix = next((p for p in _HF_PREFIXES if f"{p}encoder.layernorm_embedding.weight" in raw), None)
    if prefix is None:
        raise ConversionError(f"{src_dir}: the weights hold no encoder.layernorm_embedding: not a "
                              "BART (missing model.encoder.layernorm_embedding.weight)")
    weights, notes = {}, []
    tied = {}
    for name, tensor in raw.items():
        bare = name[len(prefix):] if name.startswith(prefix) else name
        if bare in ("shared.weight", "encoder.embed_tokens.weight", "decoder.embed_tokens.weight") \
                or name == "lm_head.weight":
            tied[name] = tensor
        elif name == "final_logits_bias":
            if tensor.abs().max() > 0:
                raise ConversionError(
                    f"{src_dir}: final_logits_bias is not zero; fairseq's output projection has no "
                    "bias, so this model cannot be represented exactly")
            notes.append("final_logits_bias: no fairseq counterpart; all zeros, so nothing is lost")
        elif bare.startswith(("encoder.", "decoder.")):
            weights[bare] = tensor
        else:
            notes.append(f"{name}: not part of BART's encoder-decoder; left out")
    if not tied:
        raise ConversionError(f"{src_dir}: no token embeddings (model.shared.weight)")
    reference = next(iter(tied.values()))
    untied = [n for n, t in tied.items() if not torch.equal(t, reference)]
    if untied:
        raise ConversionError(f"{src_dir}: {', '.join(untied)} differ from the shared embedding; "
                              "the pyramidion shares all embeddings (--share-all-embeddings)")
    weights["embed_tokens"] = reference
    notes.append(f"{', '.join(sorted(tied))}: one shared token embedding")
    missing = [k for k in REQUIRED if k not in weights and k != "encoder.embed_tokens.weight"]
    if missing:
        raise ConversionError(f"{src_dir}: not a BART; missing {', '.join(missing)}")
    sizes = _sizes_from_weights(weights)
    for ours, theirs in (("encoder_attention_heads", "encoder_attention_heads"),
                         ("decoder_attention_heads", "decoder_attention_heads")):
        if not isinstance(config.get(theirs), int):
            raise ConversionError(f"{config_path}: no integer {theirs}")
        sizes[ours] = config[theirs]
    sizes["activation_fn"] = {"gelu": "gelu", "relu": "relu", "gelu_new": "gelu_accurate",
                              "tanh": "tanh"}.get(config.get("activation_function", "gelu"))
    if sizes["activation_fn"] is None:
        raise ConversionError(f"{config_path}: activation_function "
                              f"{config.get('activation_function')!r} has no fairseq counterpart")
    sizes["no_scale_embedding"] = not config.get("scale_embedding", False)
    for key, expected in (("pad_token_id", 1), ("bos_token_id", 0), ("eos_token_id", 2)):
        if config.get(key, expected) != expected:
            raise ConversionError(f"{config_path}: {key} is {config.get(key)}, fairseq's is "
                                  f"{expected}; token ids would not carry over")
    vocab_path = os.path.join(src_dir, "vocab.json")
    merges_path = os.path.join(src_dir, "merges.txt")
    bpe = {}
    if os.path.isfile(vocab_path) and os.path.isfile(merges_path):
        bpe = {"encoder.json": vocab_path, "vocab.bpe": merges_path}
        symbols = _hf_symbols(vocab_path, weights["embed_tokens"].size(0))
    else:
        notes.append(f"{src_dir} holds no vocab.json + merges.txt: the dictionary names every id "
                     "by its number; pass the BPE files to scripts/preprocess.py later")
        symbols = [str(i) for i in range(len(SPECIALS), weights["embed_tokens"].size(0))]
    return PretrainedBart("huggingface", src_dir, weights, sizes, symbols, bpe, notes)


def _load_hf_weights(src_dir: str) -> Dict[str, torch.Tensor]:
    safetensors_path = os.path.join(src_dir, "model.safetensors")
    bin_path = os.path.join(src_dir, "pytorch_model.bin")
    if os.path.isfile(safetensors_path):
        try:
            from safetensors.torch import load_file
        except ImportError:
            raise ConversionError(f"{safetensors_path}: reading it needs the safetensors package "
                                  "(pip install safetensors)") from None
        try:
            return load_file(safetensors_path)
        except Exception as err:  # the library raises its own error types for damaged files
            raise ConversionError(f"{safetensors_path}: cannot read it ({type(err).__name__}: "
                                  f"{str(err)[:200]})") from None
    if os.path.isfile(bin_path):
        try:
            state = torch.load(bin_path, map_location="cpu", weights_only=True)
        except Exception as err:  # pickle and zip errors of a damaged file
            raise ConversionError(f"{bin_path}: cannot read it ({type(err).__name__}: "
                                  f"{str(err)[:200]})") from None
        if not isinstance(state, dict):
            raise ConversionError(f"{bin_path}: not a state dict")
        return state
    raise ConversionError(f"{src_dir}: no model.safetensors or pytorch_model.bin")


def _hf_symbols(vocab_path: str, rows: int) -> List[str]:
    with open(vocab_path, encoding="utf-8") as handle:
        try:
            vocab = json.load(handle)
        except json.JSONDecodeError as err:
            raise ConversionError(f"{vocab_path}: not JSON ({err})") from None
    if not isinstance(vocab, dict):
        raise ConversionError(f"{vocab_path}: expected a JSON object token -> id")
    for index, special in enumerate(SPECIALS):
        if vocab.get(special) != index:
            raise ConversionError(f"{vocab_path}: {special} has id {vocab.get(special)}, fairseq's "
                                  f"index is {index}; token ids would not carry over")
    by_id = {i: t for t, i in vocab.items() if isinstance(i, int)}
    symbols = []
    for i in range(len(SPECIALS), rows):
        token = by_id.get(i)
        symbols.append(MASK if token == MASK else str(i) if token is not None
                       else f"madeupword{i:05d}")
    return symbols


# ---------------------------------------------------------------------------------- shared
def _sizes_from_weights(weights) -> Dict[str, object]:
    def count(side):
        pattern = re.compile(rf"^{side}\.layers\.(\d+)\.")
        return len({int(m.group(1)) for k in weights for m in [pattern.match(k)] if m})

    embed = weights["embed_tokens"]
    return {
        "encoder_embed_dim": embed.size(1), "decoder_embed_dim": embed.size(1),
        "encoder_ffn_embed_dim": weights["encoder.layers.0.fc1.weight"].size(0),
        "decoder_ffn_embed_dim": weights["decoder.layers.0.fc1.weight"].size(0),
        "encoder_layers": count("encoder"), "decoder_layers": count("decoder"),
        "max_target_positions": weights["decoder.embed_positions.weight"].size(0) - 2,
    }


def check_layers(bart: PretrainedBart) -> None:
    """Every layer has every part, with the shapes of the first one."""
    missing = []
    for side, parts in LAYER_PARTS.items():
        for layer in range(bart.sizes[f"{side}_layers"]):
            for part in parts:
                for suffix in ("weight", "bias"):
                    key = f"{side}.layers.{layer}.{part}.{suffix}"
                    if key not in bart.weights:
                        missing.append(key)
    if missing:
        shown = ", ".join(missing[:6]) + (f", ... ({len(missing) - 6} more)" if len(missing) > 6 else "")
        raise ConversionError(f"{bart.source}: not a complete BART; missing {shown}")


def reconcile_dictionary(bart: PretrainedBart) -> List[str]:
    """The dictionary's symbols for every embedding row (index 4 on), explained in the notes.

    rows == entries: as is. rows == entries + 1 without <mask>: the last row is the <mask> that
    fairseq's denoising task appends, and <mask> is added. More rows than that (bart.base: 51201
    rows; a user's 50260-line GPT-2 dict.txt gives 50264 entries): the rows between have no symbol
    and get ``madeupwordNNNN`` entries, as bart.base's own dict.txt names them, so that no row is
    dropped and every id keeps its meaning. Fewer rows than entries: refused.
    """
    rows = bart.weights["embed_tokens"].size(0)
    symbols = list(bart.symbols)
    entries = len(SPECIALS) + len(symbols)
    if rows < entries:
        raise ConversionError(
            f"{bart.source}: the dictionary has {entries} entries (4 specials + {len(symbols)}) but "
            f"the embeddings only {rows} rows: it belongs to another model")
    if rows > entries:
        mask_row = MASK not in symbols
        filler = rows - entries - (1 if mask_row else 0)
        taken = {s for s in symbols}
        extra, k = [], 0
        while len(extra) < filler:
            name = f"madeupword{k:04d}"
            k += 1
            if name not in taken:
                extra.append(name)
        symbols += extra + ([MASK] if mask_row else [])
        what = []
        if filler:
            what.append(f"{filler} embedding rows without a dictionary entry got madeupword "
                        "entries")
        if mask_row:
            what.append(f"the last row (index {rows - 1}) is <mask>, added to the dictionary")
        bart.notes.append(f"embeddings have {rows} rows for {entries} dictionary entries: "
                          + "; ".join(what) + "; no row dropped, token ids unchanged")
    return symbols


def extend_positions(table: torch.Tensor, max_positions: int) -> torch.Tensor:
    """LED's extension: rows [2:] of the pretrained table copied again and again up to
    ``max_positions + 2`` rows; rows 0 and 1 (before the first real position) kept."""
    pretrained = table.size(0) - 2
    if max_positions < pretrained:
        raise ConversionError(f"--max-source-positions {max_positions} is shorter than the "
                              f"pretrained model's {pretrained} positions")
    out = table.new_empty(max_positions + 2, table.size(1))
    out[:2] = table[:2]
    filled = 0
    while filled < max_positions:
        take = min(pretrained, max_positions - filled)
        out[2 + filled: 2 + filled + take] = table[2: 2 + take]
        filled += take
    return out


def write_dictionary(symbols: List[str], path: str) -> None:
    """fairseq's dict.txt: one ``symbol count`` line per index from 4 on (counts are not known)."""
    with open(path, "w", encoding="utf-8", newline="\n") as out:
        for symbol in symbols:
            out.write(f"{symbol} 0\n")


def mapped_weights(bart: PretrainedBart, max_positions: int) -> Dict[str, torch.Tensor]:
    """The pyramidion's state dict entries that come from the source (everything but the
    poolers): fairseq names, shared embeddings repeated, encoder positions extended."""
    out = {k: v for k, v in bart.weights.items() if k != "embed_tokens"}
    embed = bart.weights["embed_tokens"]
    for key in ("encoder.embed_tokens.weight", "decoder.embed_tokens.weight",
                "decoder.output_projection.weight"):
        out[key] = embed
    out["encoder.embed_positions.weight"] = extend_positions(
        bart.weights["encoder.embed_positions.weight"], max_positions)
    return out


def summary(bart: PretrainedBart) -> str:
    s = bart.sizes
    return (f"{bart.kind} BART: {s['encoder_layers']}+{s['decoder_layers']} layers, d="
            f"{s['encoder_embed_dim']}, ffn {s['encoder_ffn_embed_dim']}, "
            f"{s['encoder_attention_heads']} heads, {bart.positions} positions, "
            f"{bart.weights['embed_tokens'].size(0)} tokens")


__all__ = ["ConversionError", "PretrainedBart", "detect", "extend_positions", "mapped_weights",
           "read_bart", "reconcile_dictionary", "write_dictionary"]
