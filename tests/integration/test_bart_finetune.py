"""A converted BART end to end, as the README's recipe runs it: text splits binarized with the
pretrained model's own byte-level BPE and dictionary (preprocess.py --pretrained), fine-tuned with
fairseq-train --finetune-from-model on documents 4x longer than the pretrained length (the loss goes
down), then fairseq-generate through scripts/generate.sh, score.py, summarize() and
pyramidion-summarize, all decoding the BPE back to text."""
import json
import os
import re

import pytest

from deep_pyramidion.data.cli import preprocess_main
from deep_pyramidion.eval.cli import score_main
from tests.support.bart import LONG, SIZES, write_splits
from tests.support.fairseq_logs import losses_by_update
from tests.support.paths import REPO, USER_DIR, console_script
from tests.support.processes import run, run_process


@pytest.fixture(scope="module")
def finetuned(bart_converted, tmp_path_factory):
    root = tmp_path_factory.mktemp("bart-finetune")
    converted = bart_converted["huggingface"]
    sizes = write_splits(root / "text")
    data = root / "bin"
    assert preprocess_main(["--data", str(root / "text"), "--out", str(data),
                            "--pretrained", str(converted)]) == 0
    save = root / "ckpt"
    log = run([console_script("fairseq-train"), str(data), "--user-dir", USER_DIR, "--task",
               "translation", "--arch", "pyramidion_bart_base", "--finetune-from-model",
               str(converted / "model.pt"), "--source-lang", "src", "--target-lang", "tgt",
               # the converted model's sizes and schedule (convert.json): fine-tuning builds the
               # model from these flags and loads the converted weights into it strictly
               *model_flags(converted),
               "--criterion", "label_smoothed_cross_entropy", "--label-smoothing", "0.1",
               "--optimizer", "adam", "--lr", "3e-3", "--max-tokens", "2048",
               "--max-update", "30", "--log-format", "simple", "--log-interval", "1",
               "--save-dir", str(save), "--no-epoch-checkpoints", "--cpu", "--num-workers", "0",
               "--ddp-backend", "legacy_ddp", "--seed", "1", "--valid-subset", "dev-0"], root)
    return {"root": root, "data": data, "save": save, "log": log, "sizes": sizes,
            "text": root / "text", "converted": converted}


def model_flags(converted):
    """The converted model's own flags, as pyramidion-convert records them (convert.json)."""
    flags = json.loads((converted / "convert.json").read_text())["fairseq_train_flags"]
    arch = flags.index("--arch")
    return flags[:arch] + flags[arch + 2:]            # the test names the --arch itself


def test_binarized_with_the_pretrained_models_own_ids(finetuned):
    data, converted = finetuned["data"], finetuned["converted"]
    assert (data / "dict.src.txt").read_text().split("\n")[:-1] == \
        (converted / "dict.txt").read_text().split("\n")[:-1]
    assert (data / "encoder.json").read_bytes() == (converted / "encoder.json").read_bytes()
    assert not (data / "spm.model").exists()
    manifest = json.loads((data / "preprocess.json").read_text())
    assert manifest["bpe"] == "gpt2" and manifest["documents"] == finetuned["sizes"]


def test_finetuning_on_long_inputs_lowers_the_loss(finetuned):
    by_update = losses_by_update(finetuned["log"])
    losses = [by_update[u] for u in sorted(by_update)]
    assert sorted(by_update) == list(range(1, 31))
    assert sum(losses[-5:]) / 5 < sum(losses[:5]) / 5 - 0.5, losses
    assert "Loaded checkpoint" not in finetuned["log"] or "model.pt" in finetuned["log"]
    # documents longer than the pretrained 64 positions were read, none skipped
    assert not re.search(r"skipped \d+ invalid size", finetuned["log"])


def test_generate_score_and_summarize_decode_the_bpe(finetuned):
    root, data = finetuned["root"], finetuned["data"]
    ckpt = finetuned["save"] / "checkpoint_last.pt"
    results = root / "results"
    out = run(["bash", str(REPO / "scripts" / "generate.sh"),
               str(REPO / "configs" / "generate" / "bart.args"), str(data), str(ckpt), str(results),
               "--max-len-b", "20", "--min-len", "3", "--beam", "2", "--max-source-positions",
               str(LONG)], root)
    assert "5 documents, 1 hypotheses each" in out and "(the 5 documents of test-A)" in out
    generated = (results / "generate-test-A.txt").read_text()
    hypotheses = re.findall(r"^D-\d+\t[-\d.]+\t(.*)$", generated, re.M)
    assert len(hypotheses) == 5 and any(h.strip() for h in hypotheses)
    assert not any(re.fullmatch(r"[\d ]+", h) for h in hypotheses if h.strip())   # text, not ids
    assert score_main(["--generate-output", str(results / "generate-test-A.txt"), "--ref",
                       str(finetuned["text"] / "test-A.tgt"), "--bootstrap", "0"]) == 0

    from deep_pyramidion.hub import from_pretrained

    hub = from_pretrained(str(finetuned["save"]), checkpoint_file="checkpoint_last.pt",
                          data_name_or_path=str(data), cpu=True)
    assert type(hub.bpe).__name__ == "GPT2BPE"
    docs = (finetuned["text"] / "test-A.src").read_text().splitlines()
    summaries = hub.summarize(docs[:2], beam=2, max_len_b=20, min_len=3)
    assert len(summaries) == 2 and all(isinstance(s, str) for s in summaries)
    proc = run_process([console_script("pyramidion-summarize"), "--checkpoint", ckpt,
                        "--data", data, "--beam", "2", "--max-len-b", "20",
                        finetuned["text"] / "test-A.src"], timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert len(proc.stdout.splitlines()) == 5
    assert SIZES["positions"] * 2 < LONG


def test_recipe_chains_convert_preprocess_finetune_generate_score(bart_sources, tmp_path):
    """scripts/bart_recipe.sh on the tiny Hugging Face BART: every step runs, the last one scores
    the generated summaries next to Lead; a second run reuses the finished steps."""
    text = tmp_path / "text"
    write_splits(text, seed=9)
    work = tmp_path / "work"
    # the model's sizes come from converted/convert.json: only a short CPU run is asked for here
    train_args = "--max-update 8 --max-tokens 2048 --num-workers 0 --cpu --log-format simple"
    env = dict(os.environ, MAX_SOURCE_POSITIONS=str(LONG), TRAIN_ARGS=train_args,
               GEN_ARGS="--max-len-b 16 --min-len 2 --beam 2")
    argv = ["bash", str(REPO / "scripts" / "bart_recipe.sh"), str(bart_sources["huggingface"]),
            str(text), str(work)]
    proc = run_process(argv, env=env, timeout=900)
    assert proc.returncode == 0, proc.stderr[-4000:]
    rouge = json.loads((work / "rouge.json").read_text())
    assert rouge["n"] == 5 and set(rouge["systems"]) == {"model", "lead"}
    assert json.loads((work / "converted" / "convert.json").read_text())["arch"] == \
        "pyramidion_bart_base"
    again = run_process(argv, env=env, timeout=900)
    assert again.returncode == 0, again.stderr[-4000:]
    for step in ("convert", "preprocess", "fine-tune"):
        assert re.search(rf"^{step}: .* reusing", again.stderr, re.M), again.stderr[-3000:]
