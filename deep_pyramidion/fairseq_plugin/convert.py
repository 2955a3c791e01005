"""A pretrained BART becomes a long-input pyramidion (LED's recipe), written as a fairseq checkpoint.

    convert(SRC_DIR, OUT_DIR, max_source_positions=8192)      # pyramidion-convert on the command line

SRC_DIR is a fairseq BART (model.pt + dict.txt, e.g. bart.base.tar.gz unpacked) or a Hugging Face
BART (config.json + model.safetensors / pytorch_model.bin, vocab.json + merges.txt), read locally;
bart.py reads both into one form. The pyramidion gets the source's sizes (any BART-shaped model
converts; ``arch`` only names the family defaults: chunk size, pooling schedule), BART's conventions
(learned positions, layernorm_embedding, no embedding scaling, post-norm, shared embeddings), the
encoder's positions extended to ``max_source_positions`` by copying the pretrained rows (LED), the
decoder's unchanged, and newly initialised poolers (:func:`init_poolers`).

OUT_DIR receives ``model.pt`` (loadable by ``fairseq-train --finetune-from-model``, ``--restore-file``
with the reset flags, ``fairseq-generate --path`` and ``deep_pyramidion.hub.from_pretrained(OUT_DIR,
checkpoint_file="model.pt")``), ``dict.txt`` (and its copies ``dict.src.txt`` / ``dict.tgt.txt``,
which the translation task reads), the BPE files ``encoder.json`` + ``vocab.bpe`` when the source
has them, and ``convert.json`` (what was mapped, added and left out). It is written beside OUT_DIR
and renamed into place only when complete; an existing OUT_DIR is replaced only with ``force``.
"""
import json
import logging
import os
import shutil
from argparse import Namespace
from typing import List, Optional

import torch

from deep_pyramidion.bart import SCORER_GAIN, default_schedule, init_poolers  # shared with from_bart
from deep_pyramidion.fairseq_plugin.bart import (
    PretrainedBart, check_bpe_files, mapped_weights, read_bart, reconcile_dictionary, summary,
    write_dictionary,
)
from deep_pyramidion.limits import check_max_source_positions
from deep_pyramidion.plumbing.errors import ConfigError, ConversionError, DataError
from deep_pyramidion.plumbing.files import StagedDir, check_output_folder, owned_by

logger = logging.getLogger(__name__)

FAMILIES = ("pyramidion_bart_base", "pyramidion_bart_large")
# what OUT_DIR holds after a conversion: --force replaces a folder of these and nothing else
CONVERTED_FILES = owned_by(names=("model.pt", "dict.txt", "dict.src.txt", "dict.tgt.txt",
                                  "encoder.json", "vocab.bpe", "convert.json"))


def convert(src_dir: str, out_dir: str, max_source_positions: int, arch: Optional[str] = None,
            force: bool = False, encoder_json: Optional[str] = None,
            vocab_bpe: Optional[str] = None, schedule: Optional[str] = None,
            seed: int = 1, scorer_gain: float = None) -> dict:
    """Convert and write OUT_DIR; returns the report written to OUT_DIR/convert.json."""
    _check_places(src_dir, out_dir, force)
    src_dir, out_dir = os.path.abspath(src_dir), os.path.abspath(out_dir)
    try:   # before anything is read: the position table is allocated from it
        check_max_source_positions(max_source_positions)
    except ValueError as err:
        raise ConversionError(str(err)) from None
    bart = read_bart(src_dir)
    if max_source_positions < bart.positions:
        raise ConversionError(f"--max-source-positions {max_source_positions} is shorter than "
                              f"the pretrained model's {bart.positions} positions ({src_dir})")
    arch = arch or ("pyramidion_bart_large" if bart.sizes["encoder_layers"] >= 12
                    else "pyramidion_bart_base")
    if arch not in FAMILIES:
        raise ConversionError(f"--arch: expected one of {', '.join(FAMILIES)}, got {arch!r}")
    for name, path in (("--encoder-json", encoder_json), ("--vocab-bpe", vocab_bpe)):
        if path is not None and not os.path.isfile(path):
            raise ConversionError(f"{name} {path}: no such file")
    if encoder_json and vocab_bpe:
        bart.bpe_files = {"encoder.json": encoder_json, "vocab.bpe": vocab_bpe}
    check_bpe_files(bart)   # parsed and checked against the model before they are copied
    symbols = reconcile_dictionary(bart)
    logger.info("%s (%s)", summary(bart), src_dir)

    # built beside OUT_DIR, swapped in when complete (a failure leaves OUT_DIR as it was)
    with StagedDir(out_dir, CONVERTED_FILES, "OUT_DIR") as staging:
        for name in ("dict.txt", "dict.src.txt", "dict.tgt.txt"):
            write_dictionary(symbols, os.path.join(staging, name))
        for name, path in bart.bpe_files.items():
            shutil.copyfile(path, os.path.join(staging, name))
        schedule = schedule or default_schedule(bart)
        args, model = build_pyramidion(bart, arch, max_source_positions, schedule, staging, seed)
        added = init_poolers(model, seed, SCORER_GAIN if scorer_gain is None else scorer_gain)
        report = {
            "source": src_dir, "kind": bart.kind, "arch": arch,
            # what fairseq-train --finetune-from-model OUT_DIR/model.pt must be given so that the
            # model it builds is this one (the weights load strictly)
            "fairseq_train_flags": finetune_flags(bart, arch, max_source_positions, schedule),
            "max_source_positions": max_source_positions, "pretrained_positions": bart.positions,
            "enc_layers_and_token_width": schedule,
            "sizes": bart.sizes, "dictionary_size": 4 + len(symbols),
            "added": added, "notes": bart.notes,
            "bpe_files": sorted(bart.bpe_files),
        }
        args.data = out_dir   # where the dictionaries will be, not the staging folder
        save_checkpoint(args, model, os.path.join(staging, "model.pt"))
        with open(os.path.join(staging, "convert.json"), "w", encoding="utf-8") as out:
            json.dump(report, out, indent=1)
            out.write("\n")
    for note in bart.notes:
        logger.info("%s", note)
    return report


def _check_places(src_dir: str, out_dir: str, force: bool) -> None:
    # the shared rule (no empty path, not the current directory, not a folder holding SRC_DIR),
    # and OUT_DIR not inside SRC_DIR either: the converter reads every file there
    try:
        check_output_folder("OUT_DIR", out_dir, [("SRC_DIR", src_dir)], inside_inputs=False)
    except DataError as err:
        raise ConversionError(str(err)) from None
    if os.path.exists(out_dir):
        if not os.path.isdir(out_dir):
            raise ConversionError(f"OUT_DIR {out_dir} exists and is not a folder")
        if os.listdir(out_dir) and not force:
            raise ConversionError(f"OUT_DIR {out_dir} is not empty; pass --force to replace it")


def finetune_flags(bart: PretrainedBart, arch: str, max_source_positions: int, schedule: str
                   ) -> List[str]:
    """The model flags of the converted pyramidion: the family, then the source's own sizes."""
    s = bart.sizes
    flags = ["--arch", arch, "--max-source-positions", str(max_source_positions),
             "--max-target-positions", str(s["max_target_positions"]), "--truncate-source",
             "--activation-fn", s["activation_fn"], "--enc-layers-and-token-width", schedule]
    for flag in ("encoder_embed_dim", "decoder_embed_dim", "encoder_ffn_embed_dim",
                 "decoder_ffn_embed_dim", "encoder_layers", "decoder_layers",
                 "encoder_attention_heads", "decoder_attention_heads"):
        flags += ["--" + flag.replace("_", "-"), str(s[flag])]
    # the pretrained context is the natural chunk; a model shorter than the family's default
    # chunk gets its own length (one chunk = the pretrained attention)
    return flags + ["--chunk-size", str(min(bart.positions, 1024))]


def pyramidion_argv(bart: PretrainedBart, arch: str, max_source_positions: int, schedule: str,
                    data_dir: str) -> List[str]:
    """fairseq-train's view of the converted model."""
    return [data_dir, "--task", "translation", "--source-lang", "src", "--target-lang", "tgt",
            *finetune_flags(bart, arch, max_source_positions, schedule)]


def build_pyramidion(bart: PretrainedBart, arch: str, max_source_positions: int, schedule: str,
                     data_dir: str, seed: int):
    """Parse the flags as fairseq-train does, build the model, load the mapped weights."""
    from fairseq import options, tasks

    parser = options.get_training_parser()
    args = options.parse_args_and_arch(
        parser, pyramidion_argv(bart, arch, max_source_positions, schedule, data_dir))
    if not bart.sizes.get("no_scale_embedding", True):
        args.no_scale_embedding = False
    task = tasks.setup_task(args)
    torch.manual_seed(seed)
    try:   # the model's build validates the options (once): the family's schedule names layers,
        # and a source with fewer layers needs its own schedule
        model = task.build_model(args)
    except ConfigError as err:
        raise ConversionError(f"{bart.source}: {err} (the model has "
                              f"{bart.sizes['encoder_layers']} encoder layers)") from None
    weights = mapped_weights(bart, max_source_positions)
    own = model.state_dict()
    unexpected = sorted(k for k in weights if k not in own)
    if unexpected:
        raise ConversionError(f"{bart.source}: {len(unexpected)} tensors have no place in the "
                              f"pyramidion: {', '.join(unexpected[:6])}")
    for key, tensor in weights.items():
        if own[key].shape != tensor.shape:
            raise ConversionError(f"{bart.source}: {key} has shape {tuple(tensor.shape)}, the "
                                  f"pyramidion expects {tuple(own[key].shape)}")
    missing = model.load_state_dict(weights, strict=False).missing_keys
    new = [k for k in missing if not k.startswith("encoder.poolers.")
           and not k.startswith("encoder.attention_pattern.")]
    if new:
        raise ConversionError(f"{bart.source}: the pyramidion has parameters the source does "
                              f"not fill: {', '.join(new[:6])}")
    return args, model


def save_checkpoint(args: Namespace, model, path: str) -> None:
    """A checkpoint fairseq-train (--finetune-from-model / --restore-file) and fairseq-generate read."""
    import warnings

    from fairseq.dataclass.utils import convert_namespace_to_omegaconf
    from omegaconf import OmegaConf

    with warnings.catch_warnings():   # hydra's deprecation notices about fairseq's own configs
        warnings.simplefilter("ignore", UserWarning)
        # a plain container, as fairseq's trainer saves it
        cfg = OmegaConf.to_container(convert_namespace_to_omegaconf(args), resolve=True,
                                     enum_to_str=True)
    state = {
        "args": None,
        "cfg": cfg,
        "model": model.state_dict(),
        # what fairseq's loader expects of a checkpoint that nothing has trained yet: no optimizer
        # state (fine-tuning resets it), update 0, the data iterator at the start of epoch 1
        "optimizer_history": [{"criterion_name": "none", "optimizer_name": "none",
                               "lr_scheduler_state": {"best": None}, "num_updates": 0}],
        "extra_state": {"train_iterator": {"epoch": 1, "iterations_in_epoch": 0, "version": 2},
                        "val_loss": None},
        "last_optimizer_state": None,
    }
    torch.save(state, path)
