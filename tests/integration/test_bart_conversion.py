"""pyramidion-convert on tiny BARTs made here (tests/support/bart.py): a fairseq BART trained for a
few denoising updates and a Hugging Face BartForConditionalGeneration saved with save_pretrained.
Within the pretrained length, with no pooling active, the converted pyramidion computes what the
BART computes; the encoder's positions are extended LED's way; bad sources are refused with a
message naming the file."""
import json
import os
import shutil
import subprocess
import sys

import pytest
import torch
from fairseq import checkpoint_utils
from fairseq.sequence_generator import SequenceGenerator

import deep_pyramidion.fairseq_plugin  # noqa: F401  (registers the model)
from deep_pyramidion.data.gpt2_bpe import Gpt2Bpe
from deep_pyramidion.data.io import DataError
from deep_pyramidion.fairseq_plugin.bart import ConversionError, extend_positions
from deep_pyramidion.fairseq_plugin.convert import convert
from tests.support.bart import LONG, SIZES, corpus
from tests.support.paths import console_script


@pytest.fixture
def sources(bart_sources):
    return bart_sources


@pytest.fixture
def converted(bart_converted):
    return bart_converted


def load(folder, name="model.pt"):
    models, _, task = checkpoint_utils.load_model_ensemble_and_task(
        [str(folder / name)], arg_overrides={"data": str(folder)})
    return models[0].eval(), task


def documents(folder, vocab="encoder.json", merges="vocab.bpe", n=3, limit=SIZES["positions"] - 2):
    """Token ids (with </s>) of a few generated documents, no longer than the pretrained length."""
    bpe = Gpt2Bpe(str(folder / vocab), str(folder / merges))
    return [torch.tensor(bpe.encode(text)[:limit] + [2]) for text in corpus(n, seed=7)]


def test_fairseq_bart_and_its_pyramidion_compute_the_same(sources, converted):
    bart, bart_task = load(sources["fairseq"])
    pyramidion, task = load(converted["fairseq"])
    assert type(pyramidion).__name__ == "PyramidionModel"
    assert pyramidion.encoder.embed_positions.weight.size(0) == LONG + 2
    d = task.source_dictionary
    for tokens in documents(sources["fairseq"]):
        # the BART's own dictionary maps the BPE ids to the same indices as the converted one
        ids = tokens[:-1].tolist()
        assert d.encode_line(" ".join(map(str, ids)), add_if_not_exist=False).tolist()[:-1] == \
            bart_task.source_dictionary.encode_line(" ".join(map(str, ids)),
                                                    add_if_not_exist=False).tolist()[:-1]
        src = d.encode_line(" ".join(map(str, ids)), add_if_not_exist=False).long().unsqueeze(0)
        prev = torch.cat([torch.tensor([[d.eos()]]), src[:, :-1]], dim=1)
        lengths = torch.tensor([src.size(1)])
        with torch.no_grad():
            expected = bart(src, lengths, prev)[0].log_softmax(-1)
            got = pyramidion(src, lengths, prev)[0].log_softmax(-1)
        torch.testing.assert_close(got, expected, atol=1e-5, rtol=0)
    assert_same_beams(bart, bart_task, pyramidion, task, sources["fairseq"])


def assert_same_beams(bart, bart_task, pyramidion, task, folder):
    d = task.source_dictionary
    bpe = Gpt2Bpe(str(folder / "encoder.json"), str(folder / "vocab.bpe"))
    rows = [d.encode_line(bpe.encode_line(t), add_if_not_exist=False).long()[-40:]
            for t in corpus(3, seed=11)]
    T = max(r.numel() for r in rows)
    src = torch.full((len(rows), T), d.pad(), dtype=torch.long)
    for i, r in enumerate(rows):
        src[i, T - r.numel():] = r                      # left-padded, as the translation task
    sample = {"net_input": {"src_tokens": src, "src_lengths": torch.tensor([r.numel() for r in rows])}}
    for beam in (1, 4):
        out = []
        for model, t in ((bart, bart_task), (pyramidion, task)):
            gen = SequenceGenerator([model], t.target_dictionary, beam_size=beam, max_len_a=0,
                                    max_len_b=12, min_len=4)
            hypos = gen.generate([model], sample)
            out.append(([[h["tokens"].tolist() for h in hs] for hs in hypos],
                        [[float(h["score"]) for h in hs] for hs in hypos]))
        assert out[0][0] == out[1][0]
        torch.testing.assert_close(torch.tensor(out[1][1]), torch.tensor(out[0][1]), atol=1e-5,
                                   rtol=0)


def test_hugging_face_bart_and_its_pyramidion_compute_the_same(sources, converted):
    from transformers import BartForConditionalGeneration

    hf = BartForConditionalGeneration.from_pretrained(str(sources["huggingface"])).eval()
    pyramidion, task = load(converted["huggingface"])
    d = task.source_dictionary
    for tokens in documents(sources["huggingface"], "vocab.json", "merges.txt"):
        ids = [0] + tokens.tolist()                      # Hugging Face's <s> ... </s>
        # fairseq index i is Hugging Face id i
        assert d.encode_line(" ".join(map(str, ids[1:-1])), add_if_not_exist=False).tolist() == \
            ids[1:]
        src = torch.tensor([ids])
        prev = torch.tensor([[2] + ids[:-1]])           # decoder_start_token_id = </s> = fairseq's
        with torch.no_grad():
            expected = hf(input_ids=src, decoder_input_ids=prev).logits.log_softmax(-1)
            got = pyramidion(src, torch.tensor([len(ids)]), prev)[0].log_softmax(-1)
        torch.testing.assert_close(got, expected, atol=1e-5, rtol=0)
        # beam search: Hugging Face counts the final </s> in max_new_tokens, fairseq does not
        with torch.no_grad():
            theirs = hf.generate(input_ids=src, num_beams=4, max_new_tokens=13, min_new_tokens=13,
                                 length_penalty=1.0, no_repeat_ngram_size=0,
                                 early_stopping=True)[0, 1:].tolist()
            gen = SequenceGenerator([pyramidion], task.target_dictionary, beam_size=4,
                                    max_len_a=0, max_len_b=12, min_len=12)
            ours = gen.generate([pyramidion], {"net_input": {
                "src_tokens": src, "src_lengths": torch.tensor([len(ids)])}})[0][0]
        assert ours["tokens"].tolist() == theirs


def test_extended_positions_copy_the_pretrained_rows(sources, converted):
    original = checkpoint_utils.load_checkpoint_to_cpu(str(sources["fairseq"] / "model.pt"))
    table = original["model"]["encoder.embed_positions.weight"]
    pretrained = table.size(0) - 2
    pyramidion, _ = load(converted["fairseq"])
    extended = pyramidion.encoder.embed_positions.weight.detach()
    assert torch.equal(extended[: pretrained + 2], table)
    for start in range(2, LONG + 2, pretrained):     # LED: rows 2.. copied again and again
        assert torch.equal(extended[start: start + pretrained], table[2:])
    torch.testing.assert_close(pyramidion.decoder.embed_positions.weight.detach(),
                               original["model"]["decoder.embed_positions.weight"])
    uneven = extend_positions(table, pretrained + 5)
    assert uneven.size(0) == pretrained + 7 and torch.equal(uneven[-5:], table[2:7])


def test_report_names_what_was_added_and_done(converted):
    report = json.loads((converted["fairseq"] / "convert.json").read_text())
    assert report["added"] and all(name.startswith("encoder.poolers.") for name in report["added"])
    assert any("<mask>" in note for note in report["notes"])     # the denoising task's extra row
    hf = json.loads((converted["huggingface"] / "convert.json").read_text())
    assert any(note.startswith("final_logits_bias") for note in hf["notes"])
    for folder in converted.values():
        assert {"model.pt", "dict.txt", "dict.src.txt", "dict.tgt.txt", "encoder.json",
                "vocab.bpe", "convert.json"} <= {p.name for p in folder.iterdir()}


def test_bart_base_sized_dictionary_gap_gets_madeupwords(sources, tmp_path):
    """bart.base: 51201 rows for the 50260-line GPT-2 dict.txt (+4 specials, +<mask>): the rows
    between get madeupword entries, nothing is dropped, the last row stays <mask>."""
    src = tmp_path / "gap"
    shutil.copytree(sources["fairseq"], src)
    lines = (src / "dict.txt").read_text().splitlines()
    (src / "dict.txt").write_text("\n".join(lines[:-10]) + "\n")   # 10 rows lose their entry
    out = tmp_path / "out"
    report = convert(str(src), str(out), LONG)
    assert report["dictionary_size"] == len(lines) + 4 + 1
    written = (out / "dict.txt").read_text().splitlines()
    assert written[-1].split()[0] == "<mask>"
    assert sum(w.startswith("madeupword") for w in written) >= 10
    assert any("no row dropped" in note for note in report["notes"])


@pytest.mark.parametrize("damage, message", [
    ("not_bart", "not a BART checkpoint; missing"),
    ("short", "shorter than the pretrained"),
    ("big_dict", "the embeddings only"),
    ("hf_type", "model_type is 'led', not 'bart'"),
    ("empty", "neither a fairseq BART"),
    ("same_place", "overlap"),
])
def test_bad_sources_are_refused_naming_the_file(sources, tmp_path, damage, message):
    src = tmp_path / "src"
    kind = "huggingface" if damage == "hf_type" else "fairseq"
    shutil.copytree(sources[kind], src)
    out, positions = tmp_path / "out", LONG
    if damage == "not_bart":
        state = torch.load(src / "model.pt", weights_only=False)
        state["model"] = {k: v for k, v in state["model"].items() if "layernorm_embedding" not in k}
        torch.save(state, src / "model.pt")
    elif damage == "short":
        positions = SIZES["positions"] - 1
    elif damage == "big_dict":
        with open(src / "dict.txt", "a") as f:
            f.write("".join(f"extra{i} 1\n" for i in range(5)))
    elif damage == "hf_type":
        config = json.loads((src / "config.json").read_text())
        config["model_type"] = "led"
        (src / "config.json").write_text(json.dumps(config))
    elif damage == "empty":
        shutil.rmtree(src)
        src.mkdir()
    elif damage == "same_place":
        out = src / "inside"
    with pytest.raises(ConversionError, match=message):
        convert(str(src), str(out), positions)
    assert not out.exists() or damage == "same_place"


def test_command_line_refuses_overwrite_without_force(sources, converted, tmp_path):
    cli = console_script("pyramidion-convert")
    before = (converted["fairseq"] / "model.pt").read_bytes()
    proc = subprocess.run([cli, str(sources["fairseq"]), str(converted["fairseq"]),
                           "--max-source-positions", str(LONG)], capture_output=True, text=True)
    assert proc.returncode == 1 and "pass --force" in proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith("error: ")
    assert "Traceback" not in proc.stderr
    assert (converted["fairseq"] / "model.pt").read_bytes() == before   # untouched
    proc = subprocess.run([sys.executable, "-c", "import sys; from deep_pyramidion.fairseq_plugin"
                           ".cli import convert_main; sys.exit(convert_main())", "--help"],
                          capture_output=True, text=True)
    assert proc.returncode == 0 and "exit status: 0 ok; 1 bad input" in proc.stdout


def test_force_never_replaces_the_current_directory_or_foreign_files(sources, tmp_path):
    """`pyramidion-convert SRC "$UNSET" --force` once replaced the current directory with the
    model; an empty OUT_DIR, the current directory and a folder of someone else's files are
    refused with one line, and nothing is touched."""
    cli = console_script("pyramidion-convert")
    work = tmp_path / "work"
    work.mkdir()
    (work / "notes.txt").write_text("mine")
    for out in ("", ".", str(work)):
        proc = subprocess.run([cli, str(sources["fairseq"]), out, "--force",
                               "--max-source-positions", str(LONG)],
                              capture_output=True, text=True, cwd=work)
        assert proc.returncode == 1, proc.stderr
        assert proc.stderr.strip().splitlines()[-1].startswith("error: OUT_DIR")
        assert "Traceback" not in proc.stderr
        assert sorted(os.listdir(work)) == ["notes.txt"]
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "thesis.tex").write_text("mine")
    with pytest.raises(DataError, match="did not write"):
        convert(str(sources["fairseq"]), str(foreign), LONG, force=True)
    assert sorted(os.listdir(foreign)) == ["thesis.tex"]


@pytest.mark.parametrize("source", ["fairseq", "huggingface"])
def test_converted_folder_loads_with_from_pretrained_as_it_is(converted, source):
    """OUT_DIR is a model folder as it stands: its dictionary and BPE files are found there, and
    the hub's beam search gives the hypothesis fairseq's SequenceGenerator gives on the same ids."""
    from deep_pyramidion.hub import from_pretrained

    folder = converted[source]
    hub = from_pretrained(str(folder), checkpoint_file="model.pt", cpu=True)
    assert type(hub.bpe).__name__ == "GPT2BPE"
    text = " ".join(corpus(1, seed=11)[0].split()[:20])
    tokens = hub.encode(text)
    assert hub.decode(tokens) == text                       # the model's own BPE, round trip
    (summary,) = hub.summarize([text], beam=2, max_len_b=8, min_len=2)
    model, task = load(folder)
    gen = SequenceGenerator([model], task.target_dictionary, beam_size=2, max_len_b=8, min_len=2)
    sample = {"net_input": {"src_tokens": tokens.unsqueeze(0),
                            "src_lengths": torch.tensor([tokens.numel()])}}
    expected = hub.decode(gen.generate([model], sample)[0][0]["tokens"])
    assert summary == " ".join(expected.split())            # summarize() normalises whitespace
