"""pyramidion-convert reads every input before it writes anything, and refuses what does not fit
the weights with one line naming the file (and the key): BPE files that do not parse or whose ids
have no embedding row, symbolic links out of SRC_DIR, NaN or infinite weights, config.json sizes
that are not positive integers or disagree with the tensors, and a folder that already holds a
converted pyramidion. The tiny BARTs are tests/support/bart.py's (session fixtures)."""
import json
import os
import shutil
import subprocess

import pytest
import torch

from deep_pyramidion.fairseq_plugin.bart import ConversionError, check_links
from deep_pyramidion.fairseq_plugin.convert import convert
from tests.support.bart import LONG
from tests.support.paths import console_script


def copy_of(sources, kind, tmp_path):
    src = tmp_path / f"src-{kind}"
    shutil.copytree(sources[kind], src)
    return src


def refused(src, tmp_path, match, positions=LONG, **kwargs):
    out = tmp_path / "out"
    with pytest.raises(ConversionError, match=match) as info:
        convert(str(src), str(out), positions, **kwargs)
    assert "\n" not in str(info.value)
    assert not out.exists()          # nothing written, not even a half-built folder
    return str(info.value)


def edit_config(src, **values):
    config = json.loads((src / "config.json").read_text())
    config.update(values)
    (src / "config.json").write_text(json.dumps(config))


def edit_safetensors(src, edit):
    from safetensors.torch import load_file, save_file

    state = load_file(str(src / "model.safetensors"))
    edit(state)
    save_file(state, str(src / "model.safetensors"), metadata={"format": "pt"})


# ---------------------------------------------------------------------------------- BPE files
def test_vocab_with_ids_beyond_the_embedding_rows_is_refused(bart_sources, tmp_path):
    src = copy_of(bart_sources, "huggingface", tmp_path)
    vocab = json.loads((src / "vocab.json").read_text())
    rows = max(vocab.values()) + 1
    vocab.update({f"extra{i}": rows + i for i in range(3)})
    (src / "vocab.json").write_text(json.dumps(vocab))
    message = refused(src, tmp_path, "vocab.json: 3 ids are beyond the")
    assert f"{rows} embedding rows" in message


@pytest.mark.parametrize("damage, match", [
    ("three_tokens", r"merges.txt:3: expected two tokens per merge"),
    ("foreign_token", r"merges.txt: merge \d+ .*does not hold: the two BPE files do not belong"),
    ("not_json", r"vocab.json: not a JSON BPE vocabulary"),
    ("shared_id", r"vocab.json: tokens .* share the id"),
])
def test_malformed_bpe_files_are_refused_before_they_are_copied(bart_sources, tmp_path, damage,
                                                               match):
    src = copy_of(bart_sources, "huggingface", tmp_path)
    merges = (src / "merges.txt").read_text().split("\n")
    if damage == "three_tokens":
        merges[2] = merges[2] + " x"
    elif damage == "foreign_token":
        merges.insert(5, "\u2603 \u2604")
    elif damage == "not_json":
        (src / "vocab.json").write_text('{"<s>": 0, ')
    elif damage == "shared_id":
        vocab = json.loads((src / "vocab.json").read_text())
        vocab["twin"] = vocab["<unk>"]
        (src / "vocab.json").write_text(json.dumps(vocab))
    (src / "merges.txt").write_text("\n".join(merges))
    refused(src, tmp_path, match)


def test_bpe_files_given_by_flag_are_checked_too(bart_sources, tmp_path):
    bad = tmp_path / "vocab.bpe"
    bad.write_text("#version: 0.2\nonly-one-token\n")
    refused(bart_sources["fairseq"], tmp_path, "vocab.bpe:2: expected two tokens",
            encoder_json=str(bart_sources["fairseq"] / "encoder.json"), vocab_bpe=str(bad))


# ---------------------------------------------------------------------------------- symlinks
def test_a_symbolic_link_out_of_the_source_folder_is_refused(bart_sources, tmp_path):
    src = copy_of(bart_sources, "huggingface", tmp_path)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    secret = elsewhere / "merges.txt"
    shutil.move(str(src / "merges.txt"), secret)
    (src / "merges.txt").symlink_to(secret)
    message = refused(src, tmp_path, "merges.txt: a symbolic link to")
    assert str(secret) in message and "outside" in message


def test_links_inside_the_folder_and_into_the_hub_cache_are_followed(tmp_path):
    inside = tmp_path / "model"
    inside.mkdir()
    (inside / "real-vocab.json").write_text("{}")
    (inside / "vocab.json").symlink_to("real-vocab.json")
    check_links(str(inside))                                  # no error
    # Hugging Face's cache: snapshots/<revision>/config.json -> ../../blobs/<hash>
    repo = tmp_path / "models--facebook--bart-base"
    (repo / "blobs").mkdir(parents=True)
    (repo / "blobs" / "abc123").write_text("{}")
    snapshot = repo / "snapshots" / "rev1"
    snapshot.mkdir(parents=True)
    (snapshot / "config.json").symlink_to(os.path.join("..", "..", "blobs", "abc123"))
    check_links(str(snapshot))                                # no error
    (snapshot / "merges.txt").symlink_to(tmp_path / "model" / "real-vocab.json")
    with pytest.raises(ConversionError, match="outside"):
        check_links(str(snapshot))


# ---------------------------------------------------------------------------------- weights
def test_nan_final_logits_bias_is_an_error_not_all_zeros(bart_sources, tmp_path):
    src = copy_of(bart_sources, "huggingface", tmp_path)

    def poison(state):
        state["final_logits_bias"][0, 7] = float("nan")
    edit_safetensors(src, poison)
    refused(src, tmp_path, "final_logits_bias holds 1 NaN")


@pytest.mark.parametrize("kind", ["fairseq", "huggingface"])
def test_weights_that_are_not_finite_are_refused_by_name(bart_sources, tmp_path, kind):
    src = copy_of(bart_sources, kind, tmp_path)
    key = "encoder.layers.1.fc2.weight"
    if kind == "fairseq":
        state = torch.load(src / "model.pt", weights_only=False)
        state["model"][key][0, 0] = float("inf")
        torch.save(state, src / "model.pt")
    else:
        def poison(state):
            state["model." + key][3, 1] = float("-inf")
        edit_safetensors(src, poison)
    refused(src, tmp_path, f"not finite: {key}: 1 infinite values")


def test_a_tensor_of_the_wrong_shape_is_refused(bart_sources, tmp_path):
    src = copy_of(bart_sources, "huggingface", tmp_path)

    def reshape(state):
        key = "model.decoder.layers.1.self_attn.k_proj.weight"
        state[key] = state[key][:, :-1].contiguous()
    edit_safetensors(src, reshape)
    refused(src, tmp_path, r"wrong shape: decoder.layers.1.self_attn.k_proj.weight \(32, 31\)")


# ---------------------------------------------------------------------------------- config.json
@pytest.mark.parametrize("key, value, match", [
    ("encoder_attention_heads", -2, "expected a positive integer"),
    ("d_model", 0, "expected a positive integer"),
    ("d_model", "32", "expected a positive integer"),
    ("decoder_attention_heads", True, "expected a positive integer"),
    ("encoder_ffn_dim", 64.0, "expected a positive integer"),
    ("encoder_layers", 3, "but the weights have 2"),
    ("d_model", 64, "but the weights have 32"),
    ("vocab_size", 10, "rows of the token embeddings"),
    ("max_position_embeddings", 4096, "rows of encoder.embed_positions.weight"),
    ("encoder_attention_heads", 3, "does not divide the model dimension 32"),
    ("activation_function", ["gelu"], "has no fairseq counterpart"),
    ("scale_embedding", "yes", "expected true or false"),
])
def test_hostile_config_values_are_refused_naming_the_key(bart_sources, tmp_path, key, value,
                                                          match):
    src = copy_of(bart_sources, "huggingface", tmp_path)
    edit_config(src, **{key: value})
    message = refused(src, tmp_path, match)
    assert f"config.json: {key} " in message


def test_fairseq_configuration_disagreeing_with_the_weights_is_refused(bart_sources, tmp_path):
    src = copy_of(bart_sources, "fairseq", tmp_path)
    state = torch.load(src / "model.pt", weights_only=False)
    model_cfg = state["cfg"]["model"]       # a Namespace in fairseq's denoising checkpoints
    setattr(model_cfg, "encoder_attention_heads", -2)
    torch.save(state, src / "model.pt")
    refused(src, tmp_path, r"model.pt \(its model configuration\): encoder_attention_heads is -2")


def test_command_line_ends_hostile_config_with_one_line(bart_sources, tmp_path):
    src = copy_of(bart_sources, "huggingface", tmp_path)
    edit_config(src, d_model=0)
    proc = subprocess.run([console_script("pyramidion-convert"), str(src), str(tmp_path / "out"),
                           "--max-source-positions", str(LONG)], capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("error: ") and "config.json: d_model is 0" in last
    assert not (tmp_path / "out").exists()


# ---------------------------------------------------------------------------------- pyramidions
def test_an_already_converted_pyramidion_is_not_taken_for_a_bart(bart_converted, tmp_path):
    refused(bart_converted["huggingface"], tmp_path, "holds convert.json")
    # without its convert.json, the poolers' weights in model.pt give it away
    src = tmp_path / "pyramidion"
    shutil.copytree(bart_converted["fairseq"], src)
    (src / "convert.json").unlink()
    refused(src, tmp_path, r"already a pyramidion \(holds encoder.poolers.")


def test_max_source_positions_has_a_checked_limit(bart_sources, tmp_path):
    for positions in (100_000_000, 2 ** 20 + 1):
        refused(bart_sources["fairseq"], tmp_path, "at most 1048576 source positions", positions)
