"""pipeline("summarization", model=OUT_DIR, trust_remote_code=True) on an export, where only torch
and transformers can be imported: a pyramidion trained by fairseq-train on sources cut at 128
tokens, exported with 1024 encoder positions, summarizes a document 4x the training length (read
in full, no cut) into the text that generate() + decode give with the same settings; a document
longer than the export's positions is cut as pyramidion-summarize cuts it. With deep_pyramidion
installed, the same pipeline runs without remote code when its class is passed.
"""
import json
import subprocess
import sys

import pytest

from tests.support.hf import fairseq_train_tiny, run_standalone, sentencepiece_data

TRAINED_POSITIONS = 128         # --max-source-positions of fairseq-train (with --truncate-source)
EXPORTED_POSITIONS = 1024       # --max-source-positions of pyramidion-export-hf
DECODING = ["--beam", "2", "--min-len", "3", "--max-len-b", "20", "--lenpen", "1.0",
            "--no-repeat-ngram-size", "3"]


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    root = tmp_path_factory.mktemp("hf-pipeline")
    data = sentencepiece_data(root)
    save = root / "run"
    fairseq_train_tiny(data, save, TRAINED_POSITIONS, cwd=root)
    out = root / "export"
    proc = subprocess.run([sys.executable, "-m", "deep_pyramidion.fairseq_plugin.export_hf",
                           "--checkpoint", str(save / "checkpoint_last.pt"), "--data", str(data),
                           "--max-source-positions", str(EXPORTED_POSITIONS), *DECODING,
                           str(out)], capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    return {"root": root, "out": out, "documents": documents(root, out)}


def documents(root, out):
    """{"long": >= 4x the training length and within the export's positions, "too_long": beyond
    the export's positions}, made of the test splits' documents."""
    from deep_pyramidion.hf import PyramidionTokenizer

    tokenizer = PyramidionTokenizer.from_pretrained(str(out))
    lines = [line for split in ("test-A", "dev-0", "train")
             for line in (root / "text" / f"{split}.src").read_text().splitlines()]
    found, text = {}, ""
    for line in lines * 4:
        text = f"{text} {line}".strip()
        size = len(tokenizer(text)["input_ids"])
        if "long" not in found and 4 * TRAINED_POSITIONS <= size <= EXPORTED_POSITIONS - 100:
            found["long"] = text
        if size > EXPORTED_POSITIONS + 100:
            found["too_long"] = text
            return found
    raise AssertionError("the test splits are too short to make the documents")


def test_pipeline_summarizes_four_times_the_training_length(exported):
    docs = exported["documents"]
    code = f"""
import json, sys, torch
from transformers import AutoModelForSeq2SeqLM, AutoTokenizer, pipeline
folder, docs = {str(exported["out"])!r}, {json.dumps(docs)}
summarizer = pipeline("summarization", model=folder, trust_remote_code=True)
assert not any(m.startswith(("deep_pyramidion", "fairseq")) for m in sys.modules)
tokenizer = AutoTokenizer.from_pretrained(folder, trust_remote_code=True)
model = AutoModelForSeq2SeqLM.from_pretrained(folder, trust_remote_code=True).eval()

def generated(text, sentence_separator=None, **settings):
    batch = tokenizer(text, truncation=True, return_tensors="pt")
    with torch.no_grad():
        ids = model.generate(**batch, **settings)
    return [tokenizer.decode(row, sentence_separator=sentence_separator) for row in ids]

out = {{"class": type(summarizer).__module__ + "." + type(summarizer).__name__}}
for name, text in docs.items():
    out[name] = {{
        "tokens": len(tokenizer(text)["input_ids"]),
        "read": summarizer.preprocess(text)["input_ids"][0].tolist(),
        "cut": tokenizer(text, truncation=True)["input_ids"],
        "pipeline": summarizer(text),
        "generate": generated(text),
        "pipeline_settings": summarizer(text, num_beams=3, max_new_tokens=8,
                                        num_return_sequences=2, sentence_separator=" "),
        "generate_settings": generated(text, sentence_separator=" ", num_beams=3,
                                       max_new_tokens=8, num_return_sequences=2),
    }}
out["both"] = summarizer([docs["long"], docs["too_long"]])
print(json.dumps(out))
"""
    got = json.loads(run_standalone(code, exported["root"]))
    # the class came from the folder (transformers' copy of the remote code)
    assert got["class"].startswith("transformers_modules.") and \
        got["class"].endswith("pipeline_pyramidion.PyramidionSummarizationPipeline")
    long, too_long = got["long"], got["too_long"]
    # read in full: every token of a document 4x the training length reaches the model
    assert long["tokens"] >= 4 * TRAINED_POSITIONS
    assert long["read"] == long["cut"] and len(long["read"]) == long["tokens"]
    # beyond the export's positions: the first tokens and </s>, as fairseq's --truncate-source
    assert too_long["tokens"] > EXPORTED_POSITIONS
    assert too_long["read"] == too_long["cut"] and len(too_long["read"]) == EXPORTED_POSITIONS
    assert too_long["read"][-1] == 2
    for case in (long, too_long):
        assert case["pipeline"] == [{"summary_text": case["generate"][0]}]
        assert case["pipeline"][0]["summary_text"].strip()
        assert case["pipeline_settings"] == [{"summary_text": t} for t in case["generate_settings"]]
    # a list of documents: one record each, each the document's own summary
    assert got["both"] == [long["pipeline"][0], too_long["pipeline"][0]]


def test_installed_package_runs_the_pipeline_without_remote_code(exported):
    from transformers import pipeline
    from transformers.pipelines import PIPELINE_REGISTRY

    from deep_pyramidion.hf import (
        PyramidionForConditionalGeneration, PyramidionSummarizationPipeline,
    )

    assert PIPELINE_REGISTRY.supported_tasks["summarization"]["impl"] is \
        PyramidionSummarizationPipeline
    folder = str(exported["out"])
    summarizer = pipeline("summarization", model=folder,
                          pipeline_class=PyramidionSummarizationPipeline)
    assert type(summarizer.model) is PyramidionForConditionalGeneration
    text = exported["documents"]["long"]
    result = summarizer(text)
    assert len(result) == 1 and result[0]["summary_text"].strip()
    with pytest.raises(ValueError, match="empty"):
        summarizer("  \n ")
    with pytest.raises(ValueError, match="max_source_positions"):
        summarizer(exported["documents"]["too_long"], truncation=False)
    # transformers asks for trust_remote_code whenever the folder names a custom pipeline
    with pytest.raises(ValueError, match="trust_remote_code"):
        pipeline("summarization", model=folder)
