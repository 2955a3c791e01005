"""How to initialise the poolers of a converted BART (pyramidion-convert): measured, not guessed.

Shape legend: n tokens into a pooler, k kept, M = members mixed into one output, D channels.

A converted BART's decoder was pretrained on real token representations; a successive-halving
top-k output is a weighted mix of M of them, the weights set by the score gaps. This script takes
a small BART pretrained here (fairseq's denoising task on ACLSum's paper bodies: no pretrained
weights can be downloaded; deep_pyramidion/testing/tiny_bart.py makes it the way the tests make
theirs), converts it to read 4x its pretrained length with each candidate scorer initialisation,
and measures:

  first, that the pretrained model did not collapse: per encoder layer, the std of its states over
    positions / over channels (near 0: every position has the same state; the script stops)
  at initialisation, on ACLSum dev-0 documents at 4x the pretrained length, per pooling layer:
    leader     the largest member weight of an output (1: the output is one real token; 1/M: a
               uniform average), mean over real outputs
    cosine     cosine similarity between an output and its leader's representation
    distance   ||output - leader|| / ||leader||
  fine-tuning  two candidates fine-tuned with fairseq-train --finetune-from-model on ACLSum
               (abstracts from bodies, preprocess.py --pretrained), the same flags and data:
               validation loss after each epoch.

Candidates (--gains): "default" (nn.Linear's own initialisation), 0 (zero weights: every pair
weight 0.5), and gain g: weights ~ N(0, (g / sqrt(D))^2), i.e. logits spread by ~g.

    python -m benchmarks.pooler_init --json docs/bench/pooler_init_cpu.json     # ~20 min, 2 cores
    python -m benchmarks.pooler_init --quick                                     # smoke run
"""
from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.common import console_script, machine_info, write_json

# the full run's BART: 2+2 layers, d=64, 128 positions, 1500 denoising updates (~5 min here). Its
# encoder states collapse early in pretraining (spread over positions 0.02 after layer 2 at 250
# updates) and separate again once it learns to copy (0.91 from 1000 updates on); a 4-layer d=128
# model was still collapsed (0.002) at 400 updates, which this CPU cannot take much further
FULL = dict(dim=64, ffn=256, layers=2, heads=4, positions=128, pretrain_updates=1500,
            merges=2000, finetune_updates=300, docs=40)
QUICK = dict(dim=32, ffn=64, layers=2, heads=2, positions=64, pretrain_updates=10,
             merges=200, finetune_updates=6, docs=4)


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog=__doc__.split("\n\n", 1)[1])
    p.add_argument("--gains", default="default,0,1,2,4,8",
                   help="scorer initialisations measured at init (default: %(default)s)")
    p.add_argument("--finetune", default="default,4",
                   help="the two candidates fine-tuned side by side (default: %(default)s)")
    p.add_argument("--quick", action="store_true", help="tiny sizes and updates (smoke run)")
    p.add_argument("--work", default=None, help="working folder (default: a temporary one)")
    p.add_argument("--json", default=None, metavar="PATH", help="write the results as JSON")
    return p.parse_args(argv)


def gain_value(name: str) -> float:
    return -1.0 if name == "default" else float(name)


def run(argv, cwd):
    proc = subprocess.run(argv, cwd=cwd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"{argv[0]} failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}")
    return proc.stdout + proc.stderr


def aclsum_text(work: Path) -> Path:
    from deep_pyramidion.data.aclsum import prepare_aclsum

    out = work / "aclsum"
    if not (out / "train.src").exists():
        prepare_aclsum(str(out))
    return out


def pretrained_bart(work: Path, sizes: dict, text: Path) -> Path:
    from deep_pyramidion.testing.tiny_bart import make_fairseq_bart

    if (work / "fairseq-bart" / "model.pt").exists():
        return work / "fairseq-bart"
    bodies = (text / "train.src").read_text().splitlines()
    # documents cut to the pretraining length in words: denoising reads tokens_per_sample blocks
    texts = [" ".join(b.split()[i:i + sizes["positions"] // 2])
             for b in bodies for i in range(0, min(len(b.split()), 4000), sizes["positions"] // 2)]
    # warm-up and clipping as in BART's own recipe (the tests' quick setting has neither)
    return make_fairseq_bart(work, texts=texts, sizes=sizes, updates=sizes["pretrain_updates"],
                             merges=sizes["merges"], max_tokens=2048, timeout=None,
                             extra_args=["--lr", "1e-3", "--lr-scheduler", "inverse_sqrt",
                                         "--warmup-updates", str(sizes["pretrain_updates"] // 15),
                                         "--clip-norm", "0.1"])


def representation_spread(converted: Path, text: Path, sizes: dict) -> list:
    """Per encoder layer of the pretrained model, within its pretrained length: the std of the
    states over positions / their std over channels, mean over documents. Near 0 means every
    position has the same state (a collapsed pretraining), and then no pooler could choose."""
    import torch

    from deep_pyramidion.hub import from_pretrained

    hub = from_pretrained(str(converted), checkpoint_file="model.pt", cpu=True)
    model = hub.models[0]
    model.eval()
    spreads = []
    for doc in (text / "dev-0.src").read_text().splitlines()[: sizes["docs"]]:
        tokens = hub.encode_document(doc)[: sizes["positions"] - 2]
        with torch.no_grad():
            states = model.encoder.pyramid(tokens.unsqueeze(0), keep_states=True).states
        spreads.append([float(s[0].std(dim=0).mean() / s[0].std(dim=1).mean()) for s in states[1:]])
    return [statistics.mean(layer) for layer in zip(*spreads)]


def measure_at_init(converted: Path, text: Path, sizes: dict) -> dict:
    """Leader weight, cosine and distance per pooling layer over dev-0 documents."""
    import torch

    from deep_pyramidion.hub import from_pretrained

    hub = from_pretrained(str(converted), checkpoint_file="model.pt", cpu=True)
    model = hub.models[0]
    model.eval()
    per_layer = {}
    docs = (text / "dev-0.src").read_text().splitlines()[: sizes["docs"]]
    for doc in docs:
        tokens = hub.encode_document(doc)
        with torch.no_grad():
            records = model.encoder.pyramid(tokens.unsqueeze(0), record_pooling=True).pooled
        for record in records:
            index, weight = record.pooled.assignment
            real = ~record.pooled.mask[0]
            if record.x.size(1) <= record.pooled.x.size(1):
                continue                                 # passed through: nothing pooled
            w = weight[0][real]                           # (k', M)
            leader_slot = w.argmax(dim=1)
            leader = index[0][real].gather(1, leader_slot[:, None]).squeeze(1)
            x_leader = record.x[0][leader]                # (k', D)
            y = record.pooled.x[0][real]
            stats = per_layer.setdefault(record.layer, {"leader": [], "cosine": [], "distance": []})
            stats["leader"].append(float(w.max(dim=1).values.mean()))
            stats["cosine"].append(float(torch.cosine_similarity(y, x_leader, dim=1).mean()))
            stats["distance"].append(float(((y - x_leader).norm(dim=1) /
                                            x_leader.norm(dim=1).clamp_min(1e-6)).mean()))
    return {str(layer): {k: statistics.mean(v) for k, v in stats.items()}
            for layer, stats in sorted(per_layer.items())}


def finetune(converted: Path, data: Path, save: Path, sizes: dict, cwd: Path) -> dict:
    # the converted model's own flags (pyramidion-convert records them in convert.json)
    flags = json.loads((converted / "convert.json").read_text())["fairseq_train_flags"]
    start = time.perf_counter()
    log = run([console_script("fairseq-train"), str(data), "--user-dir",
               str(Path(__file__).resolve().parents[1] / "deep_pyramidion"), "--task", "translation",
               "--finetune-from-model", str(converted / "model.pt"),
               "--source-lang", "src", "--target-lang", "tgt", *flags,
               "--criterion", "label_smoothed_cross_entropy", "--label-smoothing", "0.1",
               "--optimizer", "adam", "--lr", "1e-3", "--lr-scheduler", "inverse_sqrt",
               "--warmup-updates", "20", "--max-tokens", "4096", "--max-update",
               str(sizes["finetune_updates"]), "--valid-subset", "dev-0", "--log-format", "simple",
               "--log-interval", "10", "--save-dir", str(save), "--no-save", "--cpu",
               "--num-workers", "0", "--ddp-backend", "legacy_ddp", "--seed", "1",
               "--validate-interval-updates", str(max(1, sizes["finetune_updates"] // 5))], cwd)
    valid = [(int(u), float(loss)) for loss, u in re.findall(
        r"valid on 'dev-0' subset .*?\| loss ([\d.]+) .*?\| num_updates (\d+)", log)]
    return {"valid_loss": valid, "seconds": time.perf_counter() - start}


def short_targets(text: Path, out: Path, bpe_dir: Path, max_tokens: int) -> Path:
    """ACLSum with every abstract cut to its longest prefix of words that fits ``max_tokens`` BPE
    tokens: the decoder keeps the small BART's pretrained positions, which a whole abstract would
    exceed (fairseq would drop the document)."""
    from deep_pyramidion.data.gpt2_bpe import Gpt2Bpe

    bpe = Gpt2Bpe(str(bpe_dir / "encoder.json"), str(bpe_dir / "vocab.bpe"))
    out.mkdir(exist_ok=True)
    for f in text.iterdir():
        if f.suffix == ".tgt":
            cut = []
            for line in f.read_text().splitlines():
                words = line.split()
                while len(bpe.encode(" ".join(words))) > max_tokens:
                    words = words[: max(1, len(words) * 3 // 4)]
                cut.append(" ".join(words).removesuffix(" <q>").removesuffix("<q>").strip())
            (out / f.name).write_text("".join(c + "\n" for c in cut))
        elif f.suffix in (".src", ".ids"):
            (out / f.name).write_bytes(f.read_bytes())
    return out


def main(argv=None):
    args = parse_args(argv)
    sizes = QUICK if args.quick else FULL
    from deep_pyramidion.data.cli import preprocess_main
    from deep_pyramidion.fairseq_plugin.convert import convert

    with tempfile.TemporaryDirectory() as scratch:
        work = Path(args.work or scratch)
        work.mkdir(parents=True, exist_ok=True)
        text = aclsum_text(work)
        bart = pretrained_bart(work, sizes, text)
        long = 4 * sizes["positions"]
        rows = []
        probe = work / "converted-probe"
        convert(str(bart), str(probe), long, force=True)
        spread = representation_spread(probe, text, sizes)
        print("pretrained encoder, state spread over positions per layer: " +
              ", ".join(f"{v:.3f}" for v in spread), flush=True)
        if min(spread) < 0.05:
            raise SystemExit(f"the pretrained model collapsed (spread {min(spread):.4f}): every "
                             "position has the same state, so no initialisation can be compared")
        for name in [g.strip() for g in args.gains.split(",") if g.strip()]:
            target = work / f"converted-{name}"
            convert(str(bart), str(target), long, force=True, scorer_gain=gain_value(name))
            row = {"init": name, "at_init": measure_at_init(target, text, sizes)}
            rows.append(row)
            print(f"{name:>8}: " + "; ".join(f"layer {layer}: leader {v['leader']:.3f}, cosine "
                                             f"{v['cosine']:.3f}, distance {v['distance']:.3f}"
                                             for layer, v in row["at_init"].items()), flush=True)
        data = work / "bin"
        if not (data / "preprocess.json").exists():
            any_converted = work / f"converted-{rows[0]['init']}"
            short = short_targets(text, work / "aclsum-short-targets", any_converted,
                                  sizes["positions"] - 4)
            assert preprocess_main(["--data", str(short), "--out", str(data), "--pretrained",
                                    str(any_converted), "--overwrite"]) == 0
        for name in [g.strip() for g in args.finetune.split(",") if g.strip()]:
            target = work / f"converted-{name}"
            if not target.exists():
                convert(str(bart), str(target), long, force=True, scorer_gain=gain_value(name))
            result = finetune(target, data, work / f"finetune-{name}", sizes, work)
            row = next((r for r in rows if r["init"] == name), None)
            if row is None:
                row = {"init": name}
                rows.append(row)
            row["finetune"] = result
            print(f"{name:>8}: fine-tuning valid loss " + ", ".join(
                f"{u}: {loss:.3f}" for u, loss in result["valid_loss"]) +
                f" ({result['seconds']:.0f} s)", flush=True)
    meta = {"machine": machine_info("cpu"), "sizes": sizes, "pretrained_spread": spread,
            "command": " ".join(
        ["python -m benchmarks.pooler_init", *(argv if argv is not None else sys.argv[1:])]),
        "finished": time.strftime("%Y-%m-%d %H:%M:%S")}
    if args.json:
        os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
        write_json(args.json, meta, rows)
    return rows


if __name__ == "__main__":
    main()
