"""Reading a pretrained BART (torch only; fairseq's release files are read by
fairseq_plugin/bart.py) and making it a pyramidion's weights.

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

Every input is read and checked against the weights before anything is written (one line naming
the file and the key when it is refused): the configuration's sizes (positive integers that agree
with the tensors), every tensor (finite, of the shape its name implies), the BPE files (parsed, ids
within the embedding rows, every merge made of vocabulary tokens), the files themselves (a symbolic
link that leads out of SRC_DIR is refused: its target would end up in OUT_DIR), and the kind of
model (a folder that already holds a converted pyramidion is not a BART).
"""
import json
import logging
import math
import os
import re
from dataclasses import dataclass, field
from typing import Dict, List, Optional

import torch

from deep_pyramidion.data.gpt2_bpe import read_merges, read_vocab
from deep_pyramidion.plumbing.errors import BpeError, ConversionError

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


# the files of SRC_DIR that are read (and, for the BPE files, copied into OUT_DIR)
SOURCE_FILES = ("model.pt", "dict.txt", "encoder.json", "vocab.bpe", "config.json",
                "model.safetensors", "pytorch_model.bin", "vocab.json", "merges.txt")
# what the converter adds: a source holding any of these is a converted pyramidion, not a BART
PYRAMIDION_PREFIXES = ("encoder.poolers.", "encoder.attention_pattern.")


@dataclass
class PretrainedBart:
    kind: str                                  # "fairseq" or "huggingface"
    source: str                                # the folder
    weights: Dict[str, torch.Tensor]           # fairseq names, without the embeddings' copies
    sizes: Dict[str, object]                   # fairseq flag names -> values
    symbols: List[str]                         # dictionary symbol of index 4, 5, ...
    bpe_files: Dict[str, str] = field(default_factory=dict)   # encoder.json / vocab.bpe -> path
    notes: List[str] = field(default_factory=list)            # what was done, by name
    # a Hugging Face BART's final_logits_bias (1, rows), kept only when asked (from_bart); fairseq
    # has no place for it
    final_logits_bias: Optional[torch.Tensor] = None

    @property
    def positions(self) -> int:
        """Pretrained source length: rows of the position table minus the offset of 2."""
        return self.weights["encoder.embed_positions.weight"].size(0) - 2


def detect(src_dir: str) -> str:
    """"fairseq" (model.pt + dict.txt) or "huggingface" (config.json + weights), by the files."""
    if not os.path.isdir(src_dir):
        raise ConversionError(f"{src_dir}: no such folder")
    names = set(os.listdir(src_dir))
    if "convert.json" in names:
        raise ConversionError(
            f"{src_dir}: holds convert.json, so it is a pyramidion this converter wrote, not a "
            "BART; fine-tune it as it is (fairseq-train --finetune-from-model "
            f"{os.path.join(src_dir, 'model.pt')}) or convert the original BART again")
    if {"model.pt", "dict.txt"} <= names:
        return "fairseq"
    if "config.json" in names:
        return "huggingface"
    raise ConversionError(
        f"{src_dir}: neither a fairseq BART (model.pt + dict.txt, as in bart.base.tar.gz) nor a "
        f"Hugging Face BART (config.json + model.safetensors or pytorch_model.bin); found "
        f"{', '.join(sorted(names)[:8]) or 'nothing'}")


def read_hf_bart_checked(src_dir: str, keep_final_logits_bias: bool = False) -> PretrainedBart:
    """A Hugging Face BART folder read and checked as pyramidion-convert reads it (links, layers,
    finite weights); the fairseq sources are read by fairseq_plugin/bart.py."""
    kind = detect(src_dir)
    if kind != "huggingface":
        raise ConversionError(f"{src_dir}: a {kind} BART; this reads Hugging Face folders "
                              "(config.json + model.safetensors); use pyramidion-convert")
    check_links(src_dir)
    bart = read_hf_bart(src_dir, keep_final_logits_bias=keep_final_logits_bias)
    check_layers(bart)
    check_finite(bart)
    return bart


def check_links(src_dir: str) -> None:
    """A file of SRC_DIR that is a symbolic link must stay inside SRC_DIR: the BPE files are copied
    into OUT_DIR, so a link to anywhere would carry any file of the machine along. One exception:
    a snapshot folder of Hugging Face's cache (``.../snapshots/<revision>``) links its files to the
    ``blobs`` folder beside ``snapshots``, which is part of the same download."""
    root = os.path.realpath(src_dir)
    allowed = [root]
    parent = os.path.dirname(root)
    if os.path.basename(parent) == "snapshots":
        allowed.append(os.path.join(os.path.dirname(parent), "blobs"))
    for name in SOURCE_FILES:
        path = os.path.join(src_dir, name)
        if not os.path.islink(path):
            continue
        target = os.path.realpath(path)
        if not any(target == top or target.startswith(top.rstrip(os.sep) + os.sep)
                   for top in allowed):
            raise ConversionError(
                f"{path}: a symbolic link to {target}, outside {src_dir}; copy the file into the "
                "folder (cp -L) if it belongs to this model")


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


def read_hf_bart(src_dir: str, keep_final_logits_bias: bool = False) -> PretrainedBart:
    config_path = os.path.join(src_dir, "config.json")
    try:
        with open(config_path, encoding="utf-8") as handle:
            config = json.load(handle)
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ConversionError(f"{config_path}: not a JSON configuration ({err})") from None
    except OSError as err:
        raise ConversionError(f"{config_path}: cannot read it ({err.strerror})") from None
    if not isinstance(config, dict) or config.get("model_type") != "bart":
        kind = config.get("model_type") if isinstance(config, dict) else type(config).__name__
        raise ConversionError(f"{config_path}: model_type is {kind!r}, not 'bart'; only BART "
                              "models convert")
    for flag in ("add_final_layer_norm", "normalize_before"):   # mBART's options
        if config.get(flag):
            raise ConversionError(f"{config_path}: {flag} is true (an mBART?); BART has none")
    raw = _load_hf_weights(src_dir)
    _refuse_pyramidion(src_dir, {k[len("model."):] if k.startswith("model.") else k: v
                                 for k, v in raw.items()}, "")
    _check_tensor_types(src_dir, raw)
    prefix = next((p for p in _HF_PREFIXES if f"{p}encoder.layernorm_embedding.weight" in raw), None)
    if prefix is None:
        raise ConversionError(f"{src_dir}: the weights hold no encoder.layernorm_embedding: not a "
                              "BART (missing model.encoder.layernorm_embedding.weight)")
    weights, notes = {}, []
    tied, kept_bias = {}, None
    for name, tensor in raw.items():
        bare = name[len(prefix):] if name.startswith(prefix) else name
        if bare in ("shared.weight", "encoder.embed_tokens.weight", "decoder.embed_tokens.weight") \
                or name == "lm_head.weight":
            tied[name] = tensor
        elif name == "final_logits_bias":
            if not torch.isfinite(tensor).all():
                raise ConversionError(
                    f"{src_dir}: final_logits_bias holds {_non_finite(tensor)}: the weights are "
                    "damaged")
            if keep_final_logits_bias:
                kept_bias = tensor.detach().clone()
                notes.append("final_logits_bias: kept (the Hugging Face model adds it to the logits)")
                continue
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
    sizes = _sizes_from_weights(weights, src_dir)
    for key in ("encoder_attention_heads", "decoder_attention_heads"):
        if key not in config:
            raise ConversionError(f"{config_path}: {key} is missing; a BART config names it")
    _check_config_sizes(config_path, config, weights, sizes, HF_CONFIG_KEYS)
    for key in ("encoder_attention_heads", "decoder_attention_heads"):
        sizes[key] = config[key]
    activation = config.get("activation_function", "gelu")
    sizes["activation_fn"] = {"gelu": "gelu", "relu": "relu", "gelu_new": "gelu_accurate",
                              "tanh": "tanh"}.get(activation) if isinstance(activation, str) else None
    if sizes["activation_fn"] is None:
        raise ConversionError(f"{config_path}: activation_function "
                              f"{config.get('activation_function')!r} has no fairseq counterpart")
    if not isinstance(config.get("scale_embedding", False), bool):
        raise ConversionError(f"{config_path}: scale_embedding is "
                              f"{config.get('scale_embedding')!r}; expected true or false")
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
        symbols = _hf_symbols(vocab_path, weights["embed_tokens"].size(0))   # checks the ids
    else:
        notes.append(f"{src_dir} holds no vocab.json + merges.txt: the dictionary names every id "
                     "by its number; pass the BPE files to scripts/preprocess.py later")
        symbols = [str(i) for i in range(len(SPECIALS), weights["embed_tokens"].size(0))]
    return PretrainedBart("huggingface", src_dir, weights, sizes, symbols, bpe, notes,
                          final_logits_bias=kept_bias)


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
    """fairseq's symbol of every Hugging Face id from 4 to ``rows - 1``; vocab.json is refused
    when its ids do not fit the embeddings (an id with no row would crash the model at run time)."""
    vocab = _read_bpe_vocab(vocab_path)
    _check_ids_fit(vocab_path, vocab, rows)
    for index, special in enumerate(SPECIALS):
        if vocab.get(special) != index:
            raise ConversionError(f"{vocab_path}: {special} has id {vocab.get(special)}, fairseq's "
                                  f"index is {index}; token ids would not carry over")
    by_id = {i: t for t, i in vocab.items()}
    symbols = []
    for i in range(len(SPECIALS), rows):
        token = by_id.get(i)
        symbols.append(MASK if token == MASK else str(i) if token is not None
                       else f"madeupword{i:05d}")
    return symbols


def _read_bpe_vocab(path: str) -> Dict[str, int]:
    try:
        vocab = read_vocab(path)
    except BpeError as err:
        raise ConversionError(str(err)) from None
    if not vocab:
        raise ConversionError(f"{path}: an empty BPE vocabulary")
    negative = next((t for t, i in vocab.items() if i < 0), None)
    if negative is not None:
        raise ConversionError(f"{path}: token {negative!r} has the negative id {vocab[negative]}")
    if len(set(vocab.values())) != len(vocab):
        seen, twice = {}, None
        for token, i in vocab.items():
            if i in seen:
                twice = (seen[i], token, i)
                break
            seen[i] = token
        raise ConversionError(f"{path}: tokens {twice[0]!r} and {twice[1]!r} share the id "
                              f"{twice[2]}; every id names one token")
    return vocab


def _check_ids_fit(path: str, vocab: Dict[str, int], rows: int) -> None:
    top = max(vocab, key=vocab.get)
    if vocab[top] >= rows:
        beyond = sum(1 for i in vocab.values() if i >= rows)
        raise ConversionError(
            f"{path}: {beyond} ids are beyond the {rows} embedding rows (token {top!r} has id "
            f"{vocab[top]}): this vocabulary belongs to another model")


def check_bpe_files(bart: PretrainedBart) -> None:
    """The BPE files that will be copied into OUT_DIR are read first: both parse, every merge is
    made of vocabulary tokens and makes one, and their ids fit the model. A Hugging Face source's
    ids are the embedding rows; a fairseq source's are GPT-2 ids that dict.txt names as strings,
    and the ones it does not name are counted in the notes (text that encodes to them becomes
    <unk>)."""
    if not bart.bpe_files:
        return
    vocab_path, merges_path = bart.bpe_files["encoder.json"], bart.bpe_files["vocab.bpe"]
    vocab = _read_bpe_vocab(vocab_path)
    try:
        ranks = read_merges(merges_path)
    except BpeError as err:
        raise ConversionError(str(err)) from None
    for (first, second), rank in ranks.items():
        for token in (first, second, first + second):
            if token not in vocab:
                raise ConversionError(
                    f"{merges_path}: merge {rank + 1} ({first} {second}) needs the token "
                    f"{token!r}, which {os.path.basename(vocab_path)} does not hold: the two BPE "
                    "files do not belong together")
    rows = bart.weights["embed_tokens"].size(0)
    if bart.kind == "huggingface":
        _check_ids_fit(vocab_path, vocab, rows)
        return
    named = set(bart.symbols)
    unnamed = sum(1 for i in vocab.values() if str(i) not in named)
    if unnamed:
        bart.notes.append(
            f"{unnamed} of the {len(vocab)} ids of {os.path.basename(vocab_path)} have no entry "
            "in dict.txt (the model never saw them): text that encodes to them becomes <unk>")


def _refuse_pyramidion(where: str, weights, arch: str) -> None:
    """A converted pyramidion (its poolers' weights, or its architecture's name) is not a BART:
    converting it again would count its extended positions as pretrained and re-initialise its
    trained poolers."""
    added = sorted(k for k in weights if k.startswith(PYRAMIDION_PREFIXES))
    if added or arch.startswith("pyramidion"):
        what = f"holds {added[0]}" + (f" and {len(added) - 1} more pooler tensors"
                                      if len(added) > 1 else "") if added else f"arch {arch}"
        raise ConversionError(
            f"{where}: already a pyramidion ({what}), not a BART; fine-tune it as it is "
            "(fairseq-train --finetune-from-model) or convert the original BART again")


def _check_tensor_types(where: str, weights) -> None:
    bad = next((k for k, v in weights.items() if not isinstance(v, torch.Tensor)), None)
    if bad is not None:
        raise ConversionError(f"{where}: {bad} is a {type(weights[bad]).__name__}, not a tensor")


def _non_finite(tensor: torch.Tensor) -> str:
    nan = int(torch.isnan(tensor).sum())
    inf = int(torch.isinf(tensor).sum())
    return " and ".join(part for part in (f"{nan} NaN" if nan else "",
                                          f"{inf} infinite values" if inf else "") if part)


def check_finite(bart: PretrainedBart) -> None:
    """NaN or infinite weights are a damaged download or a diverged training run; converted, they
    would make every output NaN. The first few tensors holding them are named."""
    bad = [(name, tensor) for name, tensor in bart.weights.items()
           if tensor.is_floating_point() and not torch.isfinite(tensor).all()]
    if bad:
        shown = "; ".join(f"{name}: {_non_finite(t)}" for name, t in bad[:3])
        more = f" ({len(bad) - 3} more tensors)" if len(bad) > 3 else ""
        raise ConversionError(f"{bart.source}: weights that are not finite: {shown}{more}")


# fairseq's activation functions (fairseq.utils.get_activation_fn)
ACTIVATIONS = ("relu", "relu_squared", "gelu", "gelu_fast", "gelu_accurate", "tanh", "linear",
               "swish")
# configuration key -> the size from the weights it must equal (None: only a positive integer);
# heads must divide the model dimension
HF_CONFIG_KEYS = {
    "d_model": "encoder_embed_dim", "encoder_layers": "encoder_layers",
    "decoder_layers": "decoder_layers", "encoder_ffn_dim": "encoder_ffn_embed_dim",
    "decoder_ffn_dim": "decoder_ffn_embed_dim", "vocab_size": "embed_rows",
    "max_position_embeddings": ("encoder_positions", "max_target_positions"),
    "encoder_attention_heads": None, "decoder_attention_heads": None,
}
FAIRSEQ_CONFIG_KEYS = {
    "encoder_embed_dim": "encoder_embed_dim", "decoder_embed_dim": "decoder_embed_dim",
    "encoder_layers": "encoder_layers", "decoder_layers": "decoder_layers",
    "encoder_ffn_embed_dim": "encoder_ffn_embed_dim",
    "decoder_ffn_embed_dim": "decoder_ffn_embed_dim",
    "encoder_attention_heads": None, "decoder_attention_heads": None,
}


def _check_config_sizes(where: str, config: dict, weights, sizes: Dict[str, object],
                        keys: dict, unset_allowed: bool = False) -> None:
    """Each size the configuration states is a positive integer and agrees with the weights
    (``unset_allowed``: a None value means "not set", as in fairseq's configurations)."""
    actual = dict(sizes, embed_rows=weights["embed_tokens"].size(0),
                  encoder_positions=weights["encoder.embed_positions.weight"].size(0) - 2)
    for key, size in keys.items():
        if key not in config or (config[key] is None and unset_allowed):
            continue
        value = config[key]
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConversionError(f"{where}: {key} is {value!r}; expected a positive integer")
        for name in ((size,) if isinstance(size, str) else size or ()):
            if value != actual[name]:
                raise ConversionError(f"{where}: {key} is {value}, but the weights have "
                                      f"{actual[name]} ({_SIZE_WHAT[name]})")
        if key.endswith("_attention_heads") and sizes["encoder_embed_dim"] % value:
            raise ConversionError(f"{where}: {key} is {value}, which does not divide the model "
                                  f"dimension {sizes['encoder_embed_dim']}")


_SIZE_WHAT = {
    "encoder_embed_dim": "columns of the token embeddings",
    "decoder_embed_dim": "columns of the token embeddings",
    "encoder_layers": "encoder.layers.N in the weights", "decoder_layers": "decoder.layers.N in the weights",
    "encoder_ffn_embed_dim": "rows of encoder.layers.0.fc1.weight",
    "decoder_ffn_embed_dim": "rows of decoder.layers.0.fc1.weight",
    "embed_rows": "rows of the token embeddings",
    "encoder_positions": "rows of encoder.embed_positions.weight minus 2",
    "max_target_positions": "rows of decoder.embed_positions.weight minus 2",
}


# ---------------------------------------------------------------------------------- shared
def _sizes_from_weights(weights, where: str = "") -> Dict[str, object]:
    """The sizes the tensors imply, every tensor they are read from checked for its shape."""
    def count(side):
        pattern = re.compile(rf"^{side}\.layers\.(\d+)\.")
        return len({int(m.group(1)) for k in weights for m in [pattern.match(k)] if m})

    def matrix(name, columns=None):
        tensor = weights[name]
        if tensor.dim() != 2 or min(tensor.shape) < 1 or not tensor.is_floating_point() or \
                (columns is not None and tensor.size(1) != columns):
            expected = f"(N, {columns})" if columns is not None else "a 2-d float matrix"
            raise ConversionError(f"{where}: {name} has shape {tuple(tensor.shape)} and dtype "
                                  f"{tensor.dtype}; expected {expected}")
        return tensor

    embed = matrix("embed_tokens")
    dim = embed.size(1)
    if embed.size(0) <= len(SPECIALS):
        raise ConversionError(f"{where}: the token embeddings have {embed.size(0)} rows; not "
                              "even the 4 special tokens fit")
    for name in ("encoder.embed_positions.weight", "decoder.embed_positions.weight"):
        if matrix(name, dim).size(0) < 3:
            raise ConversionError(f"{where}: {name} has {weights[name].size(0)} rows; a BART's "
                                  "position table has its positions + 2")
    for name in ("encoder.layers.0.fc1.weight", "decoder.layers.0.fc1.weight"):
        matrix(name, dim)
    return {
        "encoder_embed_dim": embed.size(1), "decoder_embed_dim": embed.size(1),
        "encoder_ffn_embed_dim": weights["encoder.layers.0.fc1.weight"].size(0),
        "decoder_ffn_embed_dim": weights["decoder.layers.0.fc1.weight"].size(0),
        "encoder_layers": count("encoder"), "decoder_layers": count("decoder"),
        "max_target_positions": weights["decoder.embed_positions.weight"].size(0) - 2,
    }


def check_layers(bart: PretrainedBart) -> None:
    """Every layer has every part, each of the shape the model's sizes give it."""
    s = bart.sizes
    missing, wrong = [], []
    for side, parts in LAYER_PARTS.items():
        dim, ffn = s[f"{side}_embed_dim"], s[f"{side}_ffn_embed_dim"]
        shapes = {"fc1": ((ffn, dim), (ffn,)), "fc2": ((dim, ffn), (dim,))}
        for layer in range(s[f"{side}_layers"]):
            for part in parts:
                weight, bias = shapes.get(part, ((dim,), (dim,)) if part.endswith("layer_norm")
                                          else ((dim, dim), (dim,)))
                for suffix, shape in (("weight", weight), ("bias", bias)):
                    key = f"{side}.layers.{layer}.{part}.{suffix}"
                    if key not in bart.weights:
                        missing.append(key)
                    elif tuple(bart.weights[key].shape) != shape:
                        wrong.append(f"{key} {tuple(bart.weights[key].shape)}, expected {shape}")
        for suffix in ("weight", "bias"):
            key = f"{side}.layernorm_embedding.{suffix}"
            if key in bart.weights and tuple(bart.weights[key].shape) != (dim,):
                wrong.append(f"{key} {tuple(bart.weights[key].shape)}, expected {(dim,)}")
    if missing:
        shown = ", ".join(missing[:6]) + (f", ... ({len(missing) - 6} more)" if len(missing) > 6 else "")
        raise ConversionError(f"{bart.source}: not a complete BART; missing {shown}")
    if wrong:
        shown = "; ".join(wrong[:3]) + (f"; ... ({len(wrong) - 3} more)" if len(wrong) > 3 else "")
        raise ConversionError(f"{bart.source}: tensors of the wrong shape: {shown}")


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


# ---------------------------------------------------------------------------------- the new parts
# Scorer initialisation: logits w.h + b with w ~ N(0, (gain / sqrt(D))^2) have a std of about
# ``gain`` over BART's layer-normed states (per-channel variance ~1); see init_poolers. 4 keeps the
# first pooled outputs closest to real tokens at no cost in fine-tuning (benchmarks/pooler_init.py;
# BENCHMARKS.md, "Scorer initialisation of a converted BART").
SCORER_GAIN = 4.0


def default_schedule(bart: PretrainedBart) -> str:
    """Halfway through the encoder keep twice the pretrained context, after the last layer the
    pretrained context itself (the width the decoder was pretrained to read): bart.base (6 layers,
    1024 positions) gets {3: 2048, 5: 1024}, bart.large {6: 2048, 11: 1024}, the families'
    defaults; a smaller model gets the same rule on its own sizes."""
    layers, width = bart.sizes["encoder_layers"], min(bart.positions, 1024)
    if layers == 1:
        return f"{{0: {width}}}"
    middle = layers // 2 if layers // 2 < layers - 1 else layers - 2
    return f"{{{middle}: {2 * width}, {layers - 1}: {width}}}"


def init_poolers(model, seed: int, gain: float = SCORER_GAIN) -> List[str]:
    """Initialise what the source does not have: the poolers' token scorers.

    The decoder of a pretrained BART reads real token representations; the successive-halving
    top-k outputs mixes of them, whose weights come from the score gaps (softmax of base**s). With
    nn.Linear's default the logits spread by ~0.6, the scores sit around 0.5 and most outputs are
    blurred averages of their members; with zero weights every pair weight is exactly 0.5, the
    blurriest start. Weights ~ N(0, (gain / sqrt(D))^2) spread the logits by ~gain over
    layer-normed states, so the scores cover (0, 1) and most outputs are close to one member
    (BENCHMARKS.md "Pooler initialisation" measures these and fine-tunes two of them).
    ``gain`` 0 gives zero weights; a negative ``gain`` keeps nn.Linear's default.
    """
    generator = torch.Generator().manual_seed(seed)
    added = []
    for name, module in model.encoder.poolers.named_modules():
        if isinstance(module, torch.nn.Linear) and module.out_features == 1 and gain >= 0:
            D = module.in_features
            with torch.no_grad():
                module.weight.normal_(0.0, gain / math.sqrt(D), generator=generator)
                module.bias.zero_()
        for pname, _ in module.named_parameters(recurse=False):
            added.append(f"encoder.poolers.{name}.{pname}" if name else f"encoder.poolers.{pname}")
    for name, _ in model.encoder.attention_pattern.named_parameters():
        added.append(f"encoder.attention_pattern.{name}")
    return added


__all__ = ["ConversionError", "PretrainedBart", "SCORER_GAIN", "default_schedule", "detect",
           "extend_positions", "init_poolers", "mapped_weights", "read_hf_bart_checked",
           "reconcile_dictionary", "write_dictionary"]
