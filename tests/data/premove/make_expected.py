import json, random, sys
from pathlib import Path
import torch
from fairseq import checkpoint_utils, utils
from fairseq.sequence_generator import SequenceGenerator
import deep_pyramidion
OUT = Path("/work/main/tests/data/premove")
rng = random.Random(1)
expected = {"inputs": None, "models": {}}
for name in ["topk", "memory_seqpool", "strided_hard_ffn", "fixed_mostused", "dilated_legacy"]:
    models, cfg, task = checkpoint_utils.load_model_ensemble_and_task(
        [str(OUT / f"{name}.pt")], arg_overrides={"data": str(OUT), "user_dir": str(Path(deep_pyramidion.__file__).parent), "source_lang": "src", "target_lang": "tgt"})
    model = models[0].eval()
    d = task.source_dictionary
    if expected["inputs"] is None:
        lens = [7, 90, 250]
        toks = [[d.index(f"w{rng.randrange(40)}") for _ in range(n - 1)] + [d.eos()] for n in lens]
        expected["inputs"] = toks
    toks = expected["inputs"]
    T = max(len(t) for t in toks)
    src = torch.full((len(toks), T), d.pad(), dtype=torch.long)
    for i, t in enumerate(toks):
        src[i, T - len(t):] = torch.tensor(t)  # left-padded, as the translation task does
    lengths = torch.tensor([len(t) for t in toks])
    with torch.no_grad():
        enc = model.encoder(src, src_lengths=lengths)
        out = {"encoder_out": enc["encoder_out"][0].transpose(0, 1).tolist(),
               "encoder_padding_mask": enc["encoder_padding_mask"][0].tolist(), "hypos": {}}
        sample = {"net_input": {"src_tokens": src, "src_lengths": lengths}}
        for beam in (1, 3):
            gen = SequenceGenerator([model], task.target_dictionary, beam_size=beam, max_len_a=0, max_len_b=12, min_len=8)
            hy = gen.generate([model], sample)
            out["hypos"][str(beam)] = [[h["tokens"].tolist() for h in hs] for hs in hy]
            out.setdefault("scores", {})[str(beam)] = [[float(h["score"]) for h in hs] for hs in hy]
    expected["models"][name] = out
    print(name, out["hypos"]["3"][1][0])
(OUT / "expected.json").write_text(json.dumps(expected))
