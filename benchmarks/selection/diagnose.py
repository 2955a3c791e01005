"""What reaches the top-k scorer while a pyramidion learns the spans task, measured in-process.

    python -m benchmarks.selection.diagnose --updates 400 --variant paper --variant st ...

One small pyramidion per variant (the same initial weights, batches and seed) trains on the spans
task (benchmarks/selection/tasks.py) with Adam; every ``--every`` updates it records, for each
pooler:
  grad      the norm of the scorer's weight gradient (before clipping)
  score_gap mean score of the needed tokens minus that of the others (scores in (0, 1))
  kept      the needed tokens' mean weight in what the first pooler keeps (1 = every needed token
            leads its output alone; the share of the input kept, k/n, is what chance gives)
  win       the share of needed tokens that lead their output (weight >= 0.5)
  blend     how much of an output is not its leader (1 - the largest member weight), averaged:
            0 = every output is one token, near 1 = an even mix
and at the end greedy decoding's exact span recall on unseen test documents. The loop is plain
torch (no fairseq-train), so a variant costs minutes; the benchmark (python -m
benchmarks.selection) is what ranks options through fairseq-train.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import random
import sys
import tempfile
import time
from typing import Dict, List

import torch
import torch.nn.functional as F

from benchmarks.selection.tasks import TaskSpec, make_split, span_tokens, target_text

logger = logging.getLogger("benchmarks.selection.diagnose")

# name -> extra fairseq flags; "paper" is the released operator as it is
VARIANTS: Dict[str, List[str]] = {
    "paper": [],
    "st": ["--topk-straight-through", "1"],
    "normalized": ["--topk-normalize-scores", "1"],
    "st-normalized": ["--topk-straight-through", "1", "--topk-normalize-scores", "1"],
    "warmup": ["--topk-base-warmup", "200"],
    "selection": ["--selection-loss", "1"],
    "avg": ["--encoder-pooling", "avg"],
    "none": ["--encoder-pooling", "none", "--enc-layers-and-token-width", "{}"],
}


def build(dict_path: str, flags: List[str], length: int, seed: int):
    from fairseq import options, tasks

    import deep_pyramidion.fairseq_plugin  # noqa: F401  (registers the model)

    parser = options.get_training_parser()
    args = options.parse_args_and_arch(parser, [
        dict_path, "--user-dir", "deep_pyramidion", "--task", "translation",
        "--arch", "pyramidion_tiny", "--source-lang", "src", "--target-lang", "tgt",
        "--share-all-embeddings", "--max-source-positions", str(length + 1),
        "--max-target-positions", "256", "--dropout", "0", "--attention-dropout", "0",
        "--encoder-normalize-before", "--decoder-normalize-before", *flags])
    task = tasks.setup_task(args)
    torch.manual_seed(seed)
    return task.build_model(args), task.source_dictionary


def write_dictionary(docs, path: str) -> None:
    counts: Dict[str, int] = {}
    for tokens, needed in docs:
        for w in tokens:
            counts[w] = counts.get(w, 0) + 1
    for w in span_tokens() + ["|"]:
        counts.setdefault(w, 1)
    with open(path, "w", encoding="utf-8") as out:
        for w, c in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:8000]:
            out.write(f"{w} {c}\n")


def encode(dictionary, docs, task: str):
    """The documents of a task all have the same length, so no padding: src (B, T), prev and
    target (B, L) (target padded), needed (B, T) bool (the span tokens of the source)."""
    spans = set(span_tokens())
    src = torch.stack([dictionary.encode_line(" ".join(t), add_if_not_exist=False).long() for t, _ in docs])
    tgts = [dictionary.encode_line(target_text(task, n), add_if_not_exist=False).long() for _, n in docs]
    T = max(len(t) for t in tgts)
    target = torch.full((len(docs), T), dictionary.pad())
    prev = torch.full((len(docs), T), dictionary.pad())
    for i, t in enumerate(tgts):
        target[i, :len(t)] = t
        prev[i, 0] = dictionary.eos()
        prev[i, 1:len(t)] = t[:-1]
    needed = torch.tensor([[w in spans for w in t] + [False] for t, _ in docs])
    return src, prev, target, needed


def pooler_stats(model, needed: torch.Tensor) -> Dict[str, float]:
    """Scores and kept weights of the first pooler, from a forward pass recording its assignment."""
    stats = {}
    records = getattr(model.encoder, "_last_records", None)
    if not records:
        return stats
    record = records[0]
    pooler = model.encoder.poolers[str(record.layer)]
    if hasattr(pooler, "score"):
        scores = pooler.score(record.x, record.mask).detach()                          # (B, n)
        stats["score_gap"] = (scores[needed].mean() - scores[~needed].mean()).item()
    assignment = record.pooled.assignment
    if assignment is not None:
        B, k, M = assignment.index.shape
        weight_of = torch.zeros(needed.shape)
        index = assignment.index.clamp(min=0).view(B, -1)
        weight_of.scatter_add_(1, index, assignment.weight.detach().float().view(B, -1)
                               * (assignment.index >= 0).view(B, -1))
        live = ~record.pooled.mask
        leader = assignment.weight.detach().float().max(-1).values              # (B, k)
        stats["blend"] = (1 - leader[live]).mean().item()
        stats["kept"] = weight_of[needed].mean().item()
        stats["win"] = (weight_of[needed] >= 0.5).float().mean().item()
    return stats


def record_pooling(model) -> None:
    """Make this model's encoder keep its pooling records of the last forward (for pooler_stats):
    its ``pyramid`` is wrapped on the instance, nothing shared is patched."""
    encoder = model.encoder
    pyramid = encoder.pyramid

    def recording(*args, **kwargs):
        out = pyramid(*args, **dict(kwargs, record_pooling=True))
        encoder._last_records = out.pooled
        return out

    encoder.pyramid = recording


@torch.no_grad()
def greedy_recall(model, dictionary, docs, task: str, batch: int = 16) -> float:
    model.eval()
    found = total = 0
    for start in range(0, len(docs), batch):
        chunk = docs[start:start + batch]
        src, _, target, _ = encode(dictionary, chunk, task)
        lengths = torch.full((src.size(0),), src.size(1))
        encoder_out = model.encoder(src, lengths)
        tokens = torch.full((src.size(0), 1), dictionary.eos())
        for _ in range(target.size(1) + 4):
            logits, _ = model.decoder(tokens, encoder_out=encoder_out)
            tokens = torch.cat([tokens, logits[:, -1].argmax(-1, keepdim=True)], dim=1)
        for row, (_, needed) in zip(tokens[:, 1:], chunk):
            words = dictionary.string(row).split(" eos")[0].split("</s>")[0]
            hyp = " " + words + " "
            for piece in needed:
                total += 1
                found += f" {' '.join(piece)} " in hyp
    model.train()
    return found / max(total, 1)


def train_variant(name, flags, spec: TaskSpec, docs, test_docs, dict_dir, args) -> dict:
    model, dictionary = build(dict_dir, flags, spec.length, args.seed)
    record_pooling(model)
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr, betas=(0.9, 0.98))
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: min(1.0, (step + 1) / args.warmup))
    rng = random.Random(args.seed)
    history, start = [], time.perf_counter()
    model.train()
    for update in range(1, args.updates + 1):
        batch = rng.sample(docs, args.batch)
        src, prev, target, needed = encode(dictionary, batch, spec.task)
        lengths = torch.full((src.size(0),), src.size(1))
        logits, extra = model(src, lengths, prev)
        loss = F.cross_entropy(logits.view(-1, logits.size(-1)), target.view(-1),
                               ignore_index=dictionary.pad())
        selection = extra.get("selection_loss")        # --selection-loss 1: weight 1, as the
        total = loss + selection[0] if selection else loss   # benchmark's criterion adds it
        optimizer.zero_grad()
        total.backward()
        if update % args.every == 0 or update == 1:
            row = {"update": update, "loss": round(loss.item(), 4)}
            if selection:
                row["selection_loss"] = round(selection[0].item(), 4)
            for key, pooler in model.encoder.poolers.items():
                scorer = getattr(pooler, "scorer", None)
                if scorer is not None:
                    grads = [p.grad.norm().item() for p in scorer.parameters() if p.grad is not None]
                    row[f"grad{key}"] = float(sum(g * g for g in grads) ** 0.5)
            row.update({k: round(v, 4) for k, v in pooler_stats(model, needed).items()})
            history.append(row)
            logger.info("%s %s", name, json.dumps(row))
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        schedule.step()
    seconds = time.perf_counter() - start
    recall = greedy_recall(model, dictionary, test_docs, spec.task)
    logger.info("%s: span recall %.3f after %d updates (%.0f s)", name, recall, args.updates, seconds)
    return {"variant": name, "flags": flags, "recall": recall, "seconds": seconds,
            "history": history}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.selection.diagnose",
                                     description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--variant", action="append", metavar="NAME[=FLAGS]",
                        help="a name of VARIANTS, or NAME='--flag value ...' (repeatable)")
    parser.add_argument("--length", type=int, default=1024)
    parser.add_argument("--spans", type=int, default=8)
    parser.add_argument("--schedule", default="{0: 256, 1: 64}")
    parser.add_argument("--train-docs", type=int, default=2000)
    parser.add_argument("--test-docs", type=int, default=64)
    parser.add_argument("--updates", type=int, default=400)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--warmup", type=int, default=50)
    parser.add_argument("--every", type=int, default=50)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--span-length", type=int, default=3)
    parser.add_argument("--model-flags", default="", help="extra fairseq flags of every variant")
    parser.add_argument("--json", help="write the results here")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stderr)
    torch.set_num_threads(1)
    spec = TaskSpec(length=args.length, spans=args.spans, span_length=args.span_length,
                    train_docs=args.train_docs,
                    test_docs=args.test_docs).check()
    rng = random.Random(0)
    docs = make_split(spec, "train", spec.train_docs, rng)
    test_docs = make_split(spec, "test-A", spec.test_docs, rng)
    dict_dir = tempfile.mkdtemp(prefix="selection-dict-")
    for lang in ("src", "tgt"):
        write_dictionary(docs, os.path.join(dict_dir, f"dict.{lang}.txt"))
    results = []
    for item in args.variant or ["paper", "avg", "none"]:
        name, _, extra = item.partition("=")
        flags = args.model_flags.split() + list(VARIANTS.get(name, [])) + extra.split()
        if "--enc-layers-and-token-width" not in flags:
            flags += ["--enc-layers-and-token-width", args.schedule]
        results.append(train_variant(name, flags, spec, docs, test_docs, dict_dir, args))
    for r in results:
        print(f"{r['variant']:>24}  recall {r['recall']:.3f}  {r['seconds']:.0f} s  "
              f"last {r['history'][-1]}")
    if args.json:
        with open(args.json, "w") as out:
            json.dump(results, out, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
