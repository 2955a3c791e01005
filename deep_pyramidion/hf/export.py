"""Writing a pyramidion as a self-contained Hugging Face folder (torch only; the fairseq side,
fairseq_plugin/export_hf.py, reads the checkpoint and calls this).

    OUT_DIR/
      config.json              PyramidionHFConfig + auto_map and custom_pipelines (where
                               trust_remote_code finds the model's and the pipeline's code)
      generation_config.json   the project's decoding defaults (configs/generate/*.args)
      model.safetensors        the weights under the adapter's names
      fairseq_dict.json, spm.model | encoder.json + vocab.bpe, tokenizer_config.json
      configuration_pyramidion.py, modeling_pyramidion.py, tokenization_pyramidion.py,
      pipeline_pyramidion.py
      pyramidion_*.py          the core (config, schedule, topk, modules, GPT-2 BPE), copied flat
      export.json              what was mapped, shared and left out, by checkpoint name

The code is copied from this package at export time (never kept twice by hand) and its imports of
``deep_pyramidion.*`` are rewritten to relative ones, flattened into one folder: transformers
copies remote code one folder deep, following ``from .name import`` lines only.
"""
import ast
import json
import logging
import os
from typing import Dict, List, Tuple

import torch

from deep_pyramidion.plumbing.errors import ExportError

logger = logging.getLogger(__name__)

PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# the files an export runs on: the adapter's, and every module of the package they import,
# followed import by import (the core: config, schedule, topk, modules, ...; the GPT-2 BPE), so a
# module the core starts to import is carried without a list to update
ADAPTER_MODULES = ("deep_pyramidion.hf.configuration_pyramidion",
                   "deep_pyramidion.hf.modeling_pyramidion",
                   "deep_pyramidion.hf.tokenization_pyramidion",
                   "deep_pyramidion.hf.pipeline_pyramidion")
# imported by the adapter's files inside a try (an installed package's features), left as they are
# in an export: transformers does not require what a try block imports
PACKAGE_ONLY = ("deep_pyramidion.hf.from_bart",)
AUTO_MAP = {
    "AutoConfig": "configuration_pyramidion.PyramidionHFConfig",
    "AutoModelForSeq2SeqLM": "modeling_pyramidion.PyramidionForConditionalGeneration",
    "AutoTokenizer": ["tokenization_pyramidion.PyramidionTokenizer", None],
}
# pipeline("summarization", model=OUT_DIR, trust_remote_code=True) loads this class from OUT_DIR:
# transformers 5 has no summarization pipeline of its own ("pt": names of transformers' classes)
CUSTOM_PIPELINES = {
    "summarization": {"impl": "pipeline_pyramidion.PyramidionSummarizationPipeline",
                      "pt": ["AutoModelForSeq2SeqLM"], "type": "text"},
}


def mark_remote_code(config) -> None:
    """Name the copied code in ``config`` (saved with it): the Auto classes' (``auto_map``) and the
    summarization pipeline's (``custom_pipelines``); copies, so that no config shares them."""
    config.auto_map = json.loads(json.dumps(AUTO_MAP))
    config.custom_pipelines = json.loads(json.dumps(CUSTOM_PIPELINES))


# ---------------------------------------------------------------------------------- the code
def module_path(module: str):
    """The file of a deep_pyramidion module (a package's __init__.py), or None."""
    parts = module.split(".")[1:]
    base = os.path.join(PACKAGE_DIR, *parts)
    for path in (base + ".py", os.path.join(base, "__init__.py")):
        if parts and os.path.isfile(path):
            return path
    return None


def code_files() -> Dict[str, str]:
    """{dotted module name: path} of every file an export needs: the adapter's modules and what
    they import of the package, transitively (imports inside a try of PACKAGE_ONLY modules
    excepted); the package's own __init__ (the fairseq hook) is never one of them."""
    found, queue = {}, list(ADAPTER_MODULES)
    while queue:
        module = queue.pop()
        if module in found:
            continue
        path = module_path(module)
        if path is None:
            raise ExportError(f"{module}: no such module of the package")
        found[module] = path
        is_package = path.endswith("__init__.py")
        with open(path, encoding="utf-8") as handle:
            tree = ast.parse(handle.read())
        for node in ast.walk(tree):
            if not isinstance(node, ast.ImportFrom):
                continue
            target = _absolute(node, module, is_package)
            if not target.startswith("deep_pyramidion") or target in PACKAGE_ONLY:
                continue
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                if module_path(sub) is not None:
                    queue.append(sub)
            if target != "deep_pyramidion":
                queue.append(target)
    return dict(sorted(found.items()))


def flat_name(module: str) -> str:
    """deep_pyramidion.modules.poolers.topk -> pyramidion_modules_poolers_topk; the adapter's
    files keep their names (transformers' convention: modeling_<type>.py, ...)."""
    parts = module.split(".")[1:]
    if parts[0] == "hf":
        return parts[-1]
    return "pyramidion_" + "_".join(parts)


def _absolute(node: ast.ImportFrom, module: str, is_package: bool) -> str:
    if node.level == 0:
        return node.module or ""
    base = module.split(".")
    base = base if is_package else base[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def rewrite_imports(source: str, module: str, is_package: bool, known: Dict[str, str]) -> str:
    """The source with every import of a ``deep_pyramidion`` module made relative to the flat
    folder; anything imported from outside ``known`` is refused (it would not be there)."""
    lines = source.split("\n")
    edits = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import) and any(a.name.startswith("deep_pyramidion")
                                                 for a in node.names):
            raise ExportError(f"{known[module]}:{node.lineno}: 'import deep_pyramidion...' cannot be "
                              "made relative; use 'from ... import'")
        if not isinstance(node, ast.ImportFrom):
            continue
        target = _absolute(node, module, is_package)
        if not target.startswith("deep_pyramidion") or target in PACKAGE_ONLY:
            continue
        indent = " " * node.col_offset
        attributes, statements = [], []
        for alias in node.names:
            submodule = f"{target}.{alias.name}"
            if submodule in known:
                flat = flat_name(submodule)
                # the first line makes transformers copy the file (it follows "from .x import"
                # lines only), the second binds the module itself
                statements.append(f"{indent}from .{flat} import __name__ as _{flat}  # noqa: F401")
                statements.append(f"{indent}from . import {flat} as {alias.asname or alias.name}")
            else:
                attributes.append(alias.name + (f" as {alias.asname}" if alias.asname else ""))
        if attributes:
            if target not in known:
                raise ExportError(f"{known[module]}:{node.lineno}: imports {target}, which an "
                                  "export does not carry")
            statements.insert(0, f"{indent}from .{flat_name(target)} import {', '.join(attributes)}")
        edits.append((node.lineno - 1, node.end_lineno - 1, statements))
    for first, last, statements in sorted(edits, reverse=True):
        tail = lines[last][_end_col(lines[last]):]
        lines[first:last + 1] = statements[:-1] + [statements[-1] + tail]
    out = "\n".join(lines)
    ast.parse(out)   # still Python
    return out


def _end_col(line: str) -> int:
    # an import statement's line may end in a comment (# noqa ...): keep it
    index = line.find("  #")
    return index if index >= 0 else len(line)


def write_code(out_dir: str) -> List[str]:
    """Copy every file of :func:`code_files` into out_dir under its flat name; returns the names."""
    known = code_files()
    written = []
    for module, path in known.items():
        with open(path, encoding="utf-8") as handle:
            source = handle.read()
        text = rewrite_imports(source, module, path.endswith("__init__.py"), known)
        name = flat_name(module) + ".py"
        header = (f"# Copied from deep_pyramidion ({os.path.relpath(path, PACKAGE_DIR)}) by "
                  "pyramidion-export-hf, imports made relative.\n")
        with open(os.path.join(out_dir, name), "w", encoding="utf-8") as out:
            out.write(header + text)
        written.append(name)
    return written


# ---------------------------------------------------------------------------------- decoding
# The project's decoding defaults, per family (configs/generate/paper.args: the seed's inference
# command; configs/generate/bart.args: fairseq's BART summarization settings)
GENERATION_DEFAULTS = {
    "transformer": dict(beam=16, lenpen=1.0, min_len=72, max_len_b=966, no_repeat_ngram_size=0),
    "bart": dict(beam=4, lenpen=2.0, min_len=56, max_len_b=256, no_repeat_ngram_size=3),
}


def generation_config(config, overrides: dict):
    """transformers' GenerationConfig for fairseq's SequenceGenerator settings (README: "Hugging
    Face"): max_len_b tokens + </s> (fairseq forces </s> at the limit; the model's generate()
    keeps its log-probability as fairseq does), at least min_len tokens before </s>, <pad> never
    generated, all beams finished before a document is done (fairseq's stopping rule)."""
    from transformers import GenerationConfig

    settings = dict(GENERATION_DEFAULTS[config.family])
    settings.update({k: v for k, v in overrides.items() if v is not None})
    # fairseq caps the length at the decoder's positions - 1
    max_len = min(settings["max_len_b"], config.max_target_positions - 1)
    return GenerationConfig(
        num_beams=settings["beam"], length_penalty=settings["lenpen"], early_stopping=True,
        min_new_tokens=settings["min_len"], max_new_tokens=max_len + 1,
        no_repeat_ngram_size=settings["no_repeat_ngram_size"], do_sample=False,
        forced_eos_token_id=config.eos_token_id, suppress_tokens=[config.pad_token_id],
        bos_token_id=config.bos_token_id, eos_token_id=config.eos_token_id,
        pad_token_id=config.pad_token_id, decoder_start_token_id=config.decoder_start_token_id)


# ---------------------------------------------------------------------------------- the weights
def map_state_dict(state: Dict[str, torch.Tensor], config) -> Tuple[Dict[str, torch.Tensor], List[dict]]:
    """fairseq names -> the adapter's, and a report row for every checkpoint tensor: ``mapped``
    (to a name), ``shared`` (the same tensor as another one that is mapped) or ``dropped`` (no
    weights: fairseq's version counters, sinusoidal tables). Anything else is an error."""
    out, report = {}, []
    shared = state.get("decoder.embed_tokens.weight")
    if shared is None:
        raise ExportError("the checkpoint has no decoder.embed_tokens.weight: not a pyramidion")
    for name in sorted(state):
        tensor = state[name]
        if name.endswith(".version") or name.endswith("embed_positions._float_tensor"):
            report.append(dict(name=name, action="dropped",
                               why="fairseq's bookkeeping, not a weight"))
            continue
        if name == "decoder.embed_tokens.weight":
            target = "model.shared.weight"
        elif name == "encoder.embed_tokens.weight" and config.share_all_embeddings:
            _same(name, tensor, "decoder.embed_tokens.weight", shared)
            report.append(dict(name=name, action="shared", with_="decoder.embed_tokens.weight"))
            continue
        elif name == "decoder.output_projection.weight":
            if config.share_decoder_input_output_embed:
                _same(name, tensor, "decoder.embed_tokens.weight", shared)
                report.append(dict(name=name, action="shared", with_="decoder.embed_tokens.weight"))
                continue
            target = "lm_head.weight"
        elif name.startswith(("encoder.", "decoder.")):
            target = "model." + name
        else:
            raise ExportError(f"checkpoint tensor {name}: no place for it in the export")
        out[target] = tensor.detach().to(torch.float32).contiguous().clone()
        report.append(dict(name=name, action="mapped", to=target))
    return out, report


def _same(name, tensor, other_name, other) -> None:
    if tensor.shape != other.shape or not torch.equal(tensor, other):
        raise ExportError(f"checkpoint tensor {name} should be the same tensor as {other_name} "
                          "(shared embeddings) but differs")


def write_json(path: str, value) -> None:
    with open(path, "w", encoding="utf-8") as out:
        json.dump(value, out, indent=2, sort_keys=True, ensure_ascii=False)
        out.write("\n")


__all__ = ["AUTO_MAP", "CUSTOM_PIPELINES", "ExportError", "GENERATION_DEFAULTS", "code_files",
           "flat_name", "generation_config", "map_state_dict", "mark_remote_code",
           "rewrite_imports", "write_code", "write_json"]
