"""What fine-tuning a converted BART costs on a GPU: an estimate, from counted FLOPs and bytes.

No GPU was available to measure this: the figures are computed, and the computation is checked
against what can be measured here (the FLOPs of a real training step, counted by
torch.utils.flop_counter on the CPU at a length that fits).

Per training step of one document (forward + backward = 3x the forward's matrix FLOPs):

  encoder layer i, T_i tokens in, chunks of c_i = min(chunk, T_i), width d, feed-forward f:
      projections 8 T_i d^2, attention 4 T_i c_i d, feed-forward 4 T_i d f
      (T_i shrinks after each pooling layer of the schedule)
  decoder layer, L target tokens, k kept encoder positions:
      self-attention 8 L d^2 + 4 L^2 d, cross-attention 4 L d^2 + 4 k d^2 + 4 L k d,
      feed-forward 4 L d f; output projection 2 L d V
  time  = FLOPs / (peak bf16 dense FLOP/s x utilisation), for utilisations of 30% and 50%
  memory = 18 bytes per parameter (bf16 weights, fp32 master weights and gradients, Adam's two
           fp32 moments: fairseq's --bf16) + activations, bf16: 34 T_i d + 5 heads T_i c_i bytes per
           encoder layer (Korthikanti et al. 2022's count, with the chunk in place of the sequence)
           and the same with L (and L + k for cross-attention) per decoder layer

    python -m benchmarks.estimate                        # bart.base and bart.large at 8192 tokens
    python -m benchmarks.estimate --check                # also: counted vs computed FLOPs here
"""
from __future__ import annotations

import argparse
import ast
import json
import sys

from benchmarks.memory import layer_widths

MODELS = {
    "bart.base": dict(d=768, f=3072, enc=6, dec=6, heads=12, vocab=50265,
                      schedule="{3: 2048, 5: 1024}"),
    "bart.large": dict(d=1024, f=4096, enc=12, dec=12, heads=16, vocab=50265,
                       schedule="{6: 2048, 11: 1024}"),
}
GPUS = {"A100 (312 TFLOP/s bf16)": 312e12, "H100 SXM (989 TFLOP/s bf16)": 989e12,
        "H200 (989 TFLOP/s bf16)": 989e12}
GPU_MEMORY_GIB = {"A100 (312 TFLOP/s bf16)": 80, "H100 SXM (989 TFLOP/s bf16)": 80,
                  "H200 (989 TFLOP/s bf16)": 141}


def widths(m: dict, T: int):
    """Tokens into each encoder layer, and the k the encoder keeps."""
    schedule = ast.literal_eval(m["schedule"])
    ins = layer_widths(T, m["enc"], schedule)
    return ins, min(ins[-1], schedule.get(m["enc"] - 1, ins[-1]))


def forward_flops(m: dict, T: int, L: int, chunk: int) -> dict:
    d, f = m["d"], m["f"]
    ins, k = widths(m, T)
    encoder = sum(8 * t * d * d + 4 * t * min(chunk, t) * d + 4 * t * d * f for t in ins)
    decoder = m["dec"] * (8 * L * d * d + 4 * L * L * d + 4 * L * d * d + 4 * k * d * d
                          + 4 * L * k * d + 4 * L * d * f)
    return {"encoder": encoder, "decoder": decoder, "output": 2 * L * d * m["vocab"], "kept": k}


def parameters(m: dict, positions: int) -> int:
    d, f = m["d"], m["f"]
    layer = 4 * d * d + 4 * d + 2 * d * f + f + d + 4 * d        # attention, ffn, two layer norms
    dec_layer = layer + 4 * d * d + 4 * d + 2 * d               # + cross-attention and its norm
    embeddings = m["vocab"] * d + (positions + 2) * d + (1024 + 2) * d + 4 * d
    scorers = sum(d + 1 for _ in ast.literal_eval(m["schedule"]))
    return m["enc"] * layer + m["dec"] * dec_layer + embeddings + scorers


def activation_bytes(m: dict, T: int, L: int, chunk: int) -> float:
    ins, k = widths(m, T)
    d, a = m["d"], m["heads"]
    encoder = sum(34 * t * d + 5 * a * t * min(chunk, t) for t in ins)
    decoder = m["dec"] * (2 * 34 * L * d + 5 * a * L * L + 5 * a * L * k + 2 * k * d)
    return encoder + decoder + 4 * L * m["vocab"]                # + fp32 logits of the loss


def estimate(name: str, T: int, L: int, chunk: int) -> dict:
    m = MODELS[name]
    flops = forward_flops(m, T, L, chunk)
    step = 3 * (flops["encoder"] + flops["decoder"] + flops["output"])
    params = parameters(m, T)
    memory = 18 * params + activation_bytes(m, T, L, chunk)
    out = {"model": name, "tokens": T, "target_tokens": L, "kept": flops["kept"],
           "parameters": params, "step_tflop": step / 1e12, "memory_gib": memory / 2**30,
           "gpus": {}}
    for gpu, peak in GPUS.items():
        out["gpus"][gpu] = {
            "step_seconds_at_50%": step / (peak * 0.5), "step_seconds_at_30%": step / (peak * 0.3),
            "documents_per_hour_at_30%": 3600 / (step / (peak * 0.3)),
            "fits": memory / 2**30 < GPU_MEMORY_GIB[gpu] * 0.9,
        }
    return out


def counted_flops(T: int, L: int) -> dict:
    """One training step of a small pyramidion_bart_base-shaped model here, FLOPs counted by
    torch.utils.flop_counter, next to the formula for the same sizes."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from benchmarks.models import random_batch
    import deep_pyramidion.fairseq_plugin  # noqa: F401
    from fairseq import options
    from fairseq.data import Dictionary
    from fairseq.tasks.translation import TranslationTask

    m = dict(d=256, f=1024, enc=4, dec=2, heads=4, vocab=4000, schedule="{1: 1024, 3: 256}")

    d = Dictionary()
    for i in range(m["vocab"] - len(d)):
        d.add_symbol(f"w{i}")
    argv = ["unused", "--task", "translation", "--arch", "pyramidion_bart_base", "--source-lang",
            "src", "--target-lang", "tgt", "--encoder-embed-dim", str(m["d"]),
            "--decoder-embed-dim", str(m["d"]), "--encoder-ffn-embed-dim", str(m["f"]),
            "--decoder-ffn-embed-dim", str(m["f"]), "--encoder-layers", str(m["enc"]),
            "--decoder-layers", str(m["dec"]), "--encoder-attention-heads", str(m["heads"]),
            "--decoder-attention-heads", str(m["heads"]), "--max-source-positions", str(T),
            "--enc-layers-and-token-width", m["schedule"], "--chunk-size", "512",
            "--dropout", "0", "--attention-dropout", "0"]

    args = options.parse_args_and_arch(options.get_training_parser(), argv)
    model = TranslationTask(args, d, d).build_model(args)
    src, lengths, tgt, prev = random_batch(1, T, m["vocab"], L, "cpu")
    # torch's flop counter does not count the CPU's fused attention kernel: the math path it
    # counts is the same arithmetic
    from torch.nn.attention import SDPBackend, sdpa_kernel

    with sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as counter:
        logits = model(src, lengths, prev)[0]
        torch.nn.functional.cross_entropy(logits.view(-1, m["vocab"]), tgt.view(-1)).backward()
    formula = forward_flops(m, T, L, 512)
    return {"counted_tflop": counter.get_total_flops() / 1e12,
            "formula_tflop": 3 * (formula["encoder"] + formula["decoder"] + formula["output"]) / 1e12}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog=__doc__.split("\n\n", 1)[1])
    p.add_argument("--tokens", type=int, default=8192, help="source tokens (default: %(default)s)")
    p.add_argument("--target", type=int, default=256, help="target tokens (default: %(default)s)")
    p.add_argument("--chunk", type=int, default=1024, help="blockwise chunk (default: %(default)s)")
    p.add_argument("--check", action="store_true",
                   help="also count the FLOPs of a real (small) training step here")
    p.add_argument("--json", default=None, metavar="PATH")
    args = p.parse_args(argv)
    rows = [estimate(name, args.tokens, args.target, args.chunk) for name in ("bart.base", "bart.large")]
    for r in rows:
        print(f"{r['model']}: {r['tokens']} -> {r['kept']} tokens, target {r['target_tokens']}, "
              f"{r['parameters'] / 1e6:.0f}M parameters, {r['step_tflop']:.1f} TFLOP per document "
              f"step, ~{r['memory_gib']:.1f} GiB")
        for gpu, g in r["gpus"].items():
            print(f"    {gpu}: {1e3 * g['step_seconds_at_50%']:.0f}-"
                  f"{1e3 * g['step_seconds_at_30%']:.0f} ms per "
                  f"document step, ~{g['documents_per_hour_at_30%']:.0f} documents/h at 30%, "
                  f"{'fits' if g['fits'] else 'does not fit'} one GPU")
    result = {"estimates": rows}
    if args.check:
        result["check"] = counted_flops(2048, 128)
        c = result["check"]
        print(f"check (d=256, 4+2 layers, 2048 tokens): counted {c['counted_tflop']:.4f} TFLOP, "
              f"formula {c['formula_tflop']:.4f} TFLOP (ratio {c['counted_tflop'] / c['formula_tflop']:.3f})")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(result, fh, indent=1)
    return result


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
