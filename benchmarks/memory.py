"""How much memory a benchmark configuration will take on the CPU, to skip what cannot fit.

Calibrated on the peaks the benchmarks measured here (docs/bench/*_cpu.json: ``step_peak_mib``,
a configuration's own peak above the process's resting size, and ``peak_mib``); the test
tests/unit/test_memory_estimate.py holds the estimate to those measurements. Units: a "D-vector"
is one token's D float32 values (2 KiB at d = 512, 3 KiB at bart.base's 768).

  the process     ~0.35 GiB of runtime + the weights, x4 in training (gradients and AdamW's two
                  states), + the position table (T x D: sinusoidal tables are buffers too)
  inference       one encoder layer's activations are alive at a time: ~12 D-vectors per input
                  token (365-368 MiB at 16384 tokens for the pyramidion, blockwise and full
                  attention alike: full attention runs PyTorch's flash kernel without gradients)
                  + 64 MiB
  generate        + ~2 D-vectors per beam per encoder output token (the beam-expanded encoder
                  output and its cross-attention keys and values: blockwise at 8192 tokens,
                  beam 16 took 330 MiB more than beam 4); the pyramidion's output is its last
                  width, the others' the whole input
  LED             its windowed attention's buffers grow faster than the input: 57-65 D-vectors
                  per token up to 8192 tokens, 129 at 16384 (4.1 GiB): max(80, T / 128)
                  D-vectors per token
  training        ~40 D-vectors per token per layer, at that layer's width (a pyramidion layer
                  after a pooling step holds the step's width), + the attention scores kept for
                  the backward pass: 2.25 x heads x width x span x 4 bytes per layer (scores,
                  softmax, dropout mask), span = the chunk (blockwise), the width (full
                  attention) or 2 x the window (LED); + 128 MiB

The old estimate (a fixed 1.5 GiB and 20 D-vectors per token per layer in inference) skipped
131,072-token inputs for every model but the pyramidion at 20 GiB, where the pyramidion measured
3.8 GiB: inference keeps one layer's activations, not every layer's.
"""
from __future__ import annotations

import ast
from typing import Dict, List

GIB = 2 ** 30
MIB = 2 ** 20


def layer_widths(length: int, layers: int, schedule: Dict[int, int]) -> List[int]:
    """Tokens each encoder layer reads: the input, shrunk after each layer of the schedule."""
    widths, width = [], length
    for layer in range(layers):
        widths.append(width)
        if layer in schedule:
            width = min(width, schedule[layer])
    return widths


def parameters(sizes, length: int) -> int:
    """Embeddings, encoder and decoder layers (the output projection shares the embeddings),
    and the position table, which grows with the input."""
    D, F, L = sizes["dim"], sizes["ffn"], sizes["layers"]
    encoder = L * (4 * D * D + 2 * D * F)
    decoder = L * (8 * D * D + 2 * D * F)
    return sizes["vocab"] * D + encoder + decoder + length * D


def estimate_gib(spec, sizes) -> float:
    """Estimated peak GiB of one benchmark configuration (spec: table, model, length, beam,
    batch) of a model with ``sizes`` (benchmarks.models.FULL_SIZES and friends)."""
    T, B = spec["length"], spec.get("batch", 1) or 1
    L, H, D = sizes["layers"], sizes["heads"], sizes["dim"]
    model, table = spec["model"], spec["table"]
    vector = D * 4  # bytes of one D-vector
    training = table == "train"
    schedule = ast.literal_eval(sizes["schedule"]) if model == "pyramidion" else {}
    widths = layer_widths(T, L, schedule)
    kept = min(widths[-1], min(schedule.values())) if schedule else T

    total = 0.35 * GIB + parameters(sizes, T) * 4 * (4 if training else 1)
    if training:
        span = {"full": None, "led": 2 * sizes["chunk"]}.get(model, sizes["chunk"])
        for w in widths:
            total += B * 40 * w * vector
            total += B * 2.25 * H * w * min(w, span or w) * 4
        return (total + 128 * MIB) / GIB
    per_token = max(80, T / 128) if model == "led" else 12
    total += B * per_token * T * vector + 64 * MIB
    if table in ("generate", "decoder"):
        total += B * 2 * (spec.get("beam") or 1) * kept * vector
    return total / GIB


__all__ = ["estimate_gib", "layer_widths", "parameters"]
