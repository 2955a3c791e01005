"""pyramidion-export-hf on a checkpoint written by fairseq-train, and the export used where only
torch and transformers can be imported.

The export loads with AutoModelForSeq2SeqLM / AutoTokenizer.from_pretrained(OUT_DIR,
trust_remote_code=True) in a Python where deep_pyramidion and fairseq are blocked, and its
generate() with the exported generation config prints, document by document, the summaries
pyramidion-summarize prints with the same settings. Bad inputs end with one error line naming the
file or option, exit status 1, and nothing written.
"""
import ast
import json
import os
import shutil
import subprocess
import sys

import pytest
import torch

from deep_pyramidion.fairseq_plugin.export_hf import main as export_main
from tests.support.hf import fairseq_train_tiny, run_standalone, sentencepiece_data
from tests.support.paths import console_script

DECODING = ["--beam", "2", "--min-len", "3", "--max-len-b", "20", "--lenpen", "1.0",
            "--no-repeat-ngram-size", "3"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny pyramidion trained for 30 updates by fairseq-train on preprocess.py's output."""
    root = tmp_path_factory.mktemp("hf-cli")
    data = sentencepiece_data(root)
    save = root / "run"
    fairseq_train_tiny(data, save, 512, cwd=root)
    return {"root": root, "data": data, "ckpt": save / "checkpoint_last.pt"}


@pytest.fixture(scope="module")
def exported(trained):
    out = trained["root"] / "hf-export"
    proc = subprocess.run([sys.executable, "-m", "deep_pyramidion.fairseq_plugin.export_hf",
                           "--checkpoint", str(trained["ckpt"]), "--data", str(trained["data"]),
                           *DECODING, str(out)], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    # fairseq's own import-time INFO lines aside, nothing is reported
    assert not [line for line in proc.stderr.splitlines()
                if line.startswith(("error", "Traceback", "WARNING"))], proc.stderr
    return out


def test_export_folder(exported):
    config = json.loads((exported / "config.json").read_text())
    assert config["model_type"] == "pyramidion"
    assert config["auto_map"]["AutoModelForSeq2SeqLM"] == \
        "modeling_pyramidion.PyramidionForConditionalGeneration"
    assert config["custom_pipelines"]["summarization"] == {
        "impl": "pipeline_pyramidion.PyramidionSummarizationPipeline",
        "pt": ["AutoModelForSeq2SeqLM"], "type": "text"}
    assert config["enc_layers_and_token_width"] == "{0: 48, 1: 16}"
    assert config["arch"] == "pyramidion_tiny" and config["max_source_positions"] == 512
    for name in ("model.safetensors", "generation_config.json", "spm.model", "fairseq_dict.json",
                 "tokenizer_config.json", "modeling_pyramidion.py", "pipeline_pyramidion.py",
                 "pyramidion_topk.py",
                 "pyramidion_modules_pyramid.py", "export.json"):
        assert (exported / name).is_file(), name
    # the copied code imports nothing of the package but relative files, except inside a try
    # (from_bart, a feature of the installed package; transformers requires no try's imports)
    for path in exported.glob("*.py"):
        tree = ast.parse(path.read_text())
        guarded = {id(n) for t in ast.walk(tree) if isinstance(t, ast.Try) for n in ast.walk(t)}
        for node in ast.walk(tree):
            names = [node.module or ""] if isinstance(node, ast.ImportFrom) and node.level == 0 \
                else [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if any(n.startswith("deep_pyramidion") for n in names):
                assert id(node) in guarded, f"{path.name}:{node.lineno}"


@pytest.fixture(scope="module")
def summarized(trained):
    """pyramidion-summarize's lines for test-A, one document per batch."""
    documents = trained["root"] / "text" / "test-A.src"
    summarize = subprocess.run(
        [console_script("pyramidion-summarize"), "--checkpoint", str(trained["ckpt"]),
         "--data", str(trained["data"]), "--batch-size", "1", *DECODING, str(documents)],
        capture_output=True, text=True, timeout=600)
    assert summarize.returncode == 0, summarize.stderr
    return summarize.stdout.splitlines()


def test_standalone_generate_prints_what_pyramidion_summarize_prints(trained, exported,
                                                                     summarized):
    documents = trained["root"] / "text" / "test-A.src"
    expected = summarized
    code = f"""
import json, sys, torch
from transformers import AutoModelForSeq2SeqLM, AutoTokenizer
assert not any(m.startswith(("deep_pyramidion", "fairseq")) for m in sys.modules)
folder = {str(exported)!r}
tokenizer = AutoTokenizer.from_pretrained(folder, trust_remote_code=True)
model = AutoModelForSeq2SeqLM.from_pretrained(folder, trust_remote_code=True).eval()
out = []
for line in open({str(documents)!r}, encoding="utf-8").read().splitlines():
    batch = tokenizer(line, truncation=True, return_tensors="pt")
    with torch.no_grad():
        ids = model.generate(**batch)
    out.append(tokenizer.decode(ids[0]))
print(json.dumps(out))
"""
    got = json.loads(run_standalone(code, trained["root"]))
    assert len(expected) == 5 and got == expected
    assert len(set(got)) > 1


def test_recipe_exports_summarizes_with_transformers_and_scores(trained, summarized):
    """scripts/hf_recipe.sh: export -> scripts/hf_summarize.py -> score.py; the summaries are
    pyramidion-summarize's."""
    from tests.support.paths import SCRIPTS

    work = trained["root"] / "recipe"
    proc = subprocess.run(["bash", str(SCRIPTS / "hf_recipe.sh"), str(trained["ckpt"]),
                           str(trained["data"]), str(trained["root"] / "text"), str(work)],
                          env={**os.environ, "EXPORT_ARGS": " ".join(DECODING)},
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (work / "hyps-test-A.txt").read_text().splitlines() == summarized
    rouge = json.loads((work / "rouge.json").read_text())
    assert "rouge1" in json.dumps(rouge).lower()


def test_standalone_load_sees_the_fairseq_weights(trained, exported):
    """Teacher-forced log-probabilities of the loaded export = fairseq's, to 1e-5."""
    from deep_pyramidion.fairseq_plugin.hub import from_pretrained

    hub = from_pretrained(str(trained["ckpt"].parent), checkpoint_file="checkpoint_last.pt",
                          data_name_or_path=str(trained["data"]))
    model = hub.models[0]
    model.eval()
    tokens = torch.stack([hub.encode("the model reads long documents " * 20)])
    prev = torch.tensor([[2, 10, 11, 12, 13]])
    with torch.no_grad():
        ours = model.get_normalized_probs(model(tokens, torch.tensor([tokens.size(1)]), prev),
                                          log_probs=True)
    code = f"""
import json, torch
from transformers import AutoModelForSeq2SeqLM
model = AutoModelForSeq2SeqLM.from_pretrained({str(exported)!r}, trust_remote_code=True).eval()
with torch.no_grad():
    out = model(input_ids=torch.tensor({tokens.tolist()}),
                decoder_input_ids=torch.tensor({prev.tolist()})).logits.log_softmax(-1)
print(json.dumps(out.tolist()))
"""
    theirs = torch.tensor(json.loads(run_standalone(code, trained["root"])))
    assert (ours - theirs).abs().max().item() < 1e-5


# ---------------------------------------------------------------------------------- bad input
def export_cli(capsys, *argv):
    code = export_main([str(a) for a in argv])
    return code, capsys.readouterr().err


def edited_checkpoint(trained, tmp_path, **changes):
    """The trained checkpoint with some model arguments changed."""
    from fairseq import checkpoint_utils
    from omegaconf import open_dict

    state = checkpoint_utils.load_checkpoint_to_cpu(str(trained["ckpt"]))
    model_args = state["cfg"]["model"]
    with open_dict(state["cfg"]):
        for name, value in changes.items():
            setattr(model_args, name, value)
    path = tmp_path / "edited.pt"
    torch.save(state, path)
    return path


@pytest.mark.parametrize("changes, needle", [
    (dict(arch="transformer", _name="transformer"), "not a pyramidion"),
    (dict(adaptive_softmax_cutoff="10,20"), "--adaptive-softmax-cutoff 10,20"),
    (dict(encoder_pooling="bogus"), "--encoder-pooling"),
])
def test_checkpoint_that_cannot_be_exported(trained, tmp_path, capsys, changes, needle):
    ckpt = edited_checkpoint(trained, tmp_path, **changes)
    code, err = export_cli(capsys, "--checkpoint", ckpt, "--data", trained["data"],
                           tmp_path / "out")
    assert code == 1 and needle in err
    assert [line for line in err.splitlines() if line.startswith("error:")] == \
        [err.strip().splitlines()[-1]]
    assert not (tmp_path / "out").exists()


def test_dictionary_that_does_not_fit(trained, tmp_path, capsys):
    data = tmp_path / "data"
    shutil.copytree(trained["data"], data)
    with open(data / "dict.src.txt", "a", encoding="utf-8") as extra:
        extra.write("madeup1 1\nmadeup2 1\n")
    (data / "dict.tgt.txt").write_text((data / "dict.src.txt").read_text())
    code, err = export_cli(capsys, "--checkpoint", trained["ckpt"], "--data", data,
                           tmp_path / "out")
    assert code == 1 and "dict.src.txt" in err and "rows" in err
    assert not (tmp_path / "out").exists()


def test_tokenizer_of_another_model(trained, tmp_path, capsys):
    from deep_pyramidion.data.gpt2_bpe import learn_merges, write_bpe_files

    tokens, ranks = learn_merges(["some other text entirely"] * 3, merges=10)
    write_bpe_files({t: i for i, t in enumerate(tokens)}, ranks, str(tmp_path / "encoder.json"),
                    str(tmp_path / "vocab.bpe"))
    code, err = export_cli(capsys, "--checkpoint", trained["ckpt"], "--data", trained["data"],
                           "--gpt2-encoder-json", tmp_path / "encoder.json",
                           "--gpt2-vocab-bpe", tmp_path / "vocab.bpe", tmp_path / "out")
    assert code == 1 and "--gpt2-encoder-json" in err
    assert not (tmp_path / "out").exists()


def test_existing_folder_replaced_only_with_force(trained, tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / "config.json").write_text("{}")
    argv = ["--checkpoint", trained["ckpt"], "--data", trained["data"], out]
    code, err = export_cli(capsys, *argv)
    assert code == 1 and "--force" in err
    assert (out / "config.json").read_text() == "{}"
    code, _ = export_cli(capsys, *argv, "--force")
    assert code == 0 and json.loads((out / "config.json").read_text())["model_type"] == "pyramidion"
    # someone else's file in it: refused even with --force
    (out / "notes.txt").write_text("mine")
    code, err = export_cli(capsys, *argv, "--force")
    assert code == 1 and (out / "notes.txt").read_text() == "mine"
