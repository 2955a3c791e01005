"""Which input tokens the encoder's poolers carried forward: the paper's "highlighting".

Shape legend: T input tokens of one document, n / k a pooler's input / output width,
M inputs an output mixes.

What a weight is: a pooler turns n inputs into k outputs, each output a weighted sum of a group of
inputs; the pooler reports that assignment itself (modules/poolers/registry.py: ``Assignment``,
which inputs each output mixes and with which weight). For the successive-halving top-k the groups
partition the inputs and each group's weights sum to 1; hard-topk and most-used keep single
tokens with weight 1; avg and seqpool mix windows. A layer-1 output is a mix of layer-0 outputs,
each a mix of input tokens, so a token's weight at layer l is the product of its weights along its
path: token t -> layer-0 output o0(t) -> layer-1 output o1(o0(t)) ... A token with weight near 1
is what its output carries forward (kept); a token with weight near 0 was pooled away (or, for a
selecting pooler, dropped: weight 0, no owner). Poolers whose outputs are not weighted sums of
tokens (max, conv, dilated-conv) have no assignment and are refused.

The encoder runs unchanged (``encoder.pyramid(..., record_pooling=True)``); each pooler's output
is recomputed from its assignment and compared with what it returned before anything is drawn, so
a pooler whose assignment does not describe its output is caught.

    layers = pooling_weights(model, src_tokens)          # (1, T) -> [PoolingLayer, ...]
    highlight(hub, text, out_dir)                        # HTML + PNG + JSON for one document

Needs torch (and matplotlib for the PNG); not fairseq: the hub and the model are duck-typed.
"""
import html
import json
import logging
import os
from dataclasses import dataclass
from typing import List, Optional, Tuple

import torch

from deep_pyramidion.plumbing.errors import HighlightError

logger = logging.getLogger(__name__)

ROUNDTRIP_TOL = 1e-4  # max |output recomputed from the assignment - pooler output| (float32)


@dataclass
class PoolingLayer:
    layer: int            # encoder layer after which the pooler runs
    width: int            # the schedule's width
    n_in: int             # positions it received
    n_out: int            # positions it returned
    real_out: int         # outputs holding at least one real token
    pooled: bool          # False when n_in <= width (the pooler passes everything through)
    owner: torch.Tensor   # (T,) long: output of this layer each input token ends up in, -1 none
    weight: torch.Tensor  # (T,) float64: the token's weight in that output
    max_error: float      # output recomputed from the assignment vs the pooler's output


def _check_assignment(record) -> float:
    """Recompute the pooler's output from its assignment; return the max abs difference."""
    index, weight = record.pooled.assignment
    x = record.x.float()                                           # (1, n, C)
    members = x[0][index[0].clamp_min(0)]                          # (k, M, C)
    w = weight[0].float().masked_fill(index[0] < 0, 0.0)           # (k, M)
    y = (members * w.unsqueeze(-1)).sum(dim=1)                     # (k, C)
    return float((y - record.pooled.x[0].float()).abs().max()) if y.numel() else 0.0


def pooling_weights(model, src_tokens: torch.Tensor) -> List[PoolingLayer]:
    """Run the encoder on one document (1, T) and return its pooling layers with token weights."""
    encoder = model.encoder
    poolers = getattr(encoder, "poolers", None)
    if poolers is None or len(poolers) == 0:
        raise HighlightError("this model has no pooling layers (trained with --encoder-pooling "
                             "none / --use-sparse-attn only_blockwise): nothing to highlight")
    if src_tokens.dim() != 2 or src_tokens.size(0) != 1:
        raise ValueError(f"src_tokens must be (1, T), got {tuple(src_tokens.shape)}")
    with torch.no_grad():
        records = encoder.pyramid(src_tokens, record_pooling=True).pooled
    if not records:
        raise HighlightError("the encoder ran but no pooler was called")

    T = src_tokens.size(1)
    owner = torch.arange(T)                       # token -> position in the current sequence
    weight = torch.ones(T, dtype=torch.float64)
    pad = src_tokens[0].eq(encoder.padding_idx).cpu()
    owner[pad] = -1
    weight[pad] = 0.0
    layers = []
    for record in records:
        pooler = poolers[str(record.layer)]
        if record.pooled.assignment is None:
            raise HighlightError(
                f"layer {record.layer}: the {type(pooler).__name__} pooler's outputs are not "
                "weighted sums of tokens (max, conv, dilated-conv): nothing to highlight")
        err = _check_assignment(record)
        if err > ROUNDTRIP_TOL:
            raise HighlightError(
                f"layer {record.layer}: the pooler's assignment does not reproduce its output "
                f"(max error {err:.3g})")
        index = record.pooled.assignment.index[0].cpu()                  # (k, M)
        w = record.pooled.assignment.weight[0].cpu().to(torch.float64)   # (k, M)
        n = record.x.size(1)
        k, M = index.shape
        member_owner = torch.full((n,), -1, dtype=torch.long)
        member_weight = torch.zeros(n, dtype=torch.float64)
        real = index >= 0
        outs = torch.arange(k).view(k, 1).expand(k, M)
        member_owner[index[real]] = outs[real]
        member_weight[index[real]] = w[real]
        live = owner >= 0
        new_owner = torch.full_like(owner, -1)
        new_owner[live] = member_owner[owner[live]]
        weight = torch.where(live, weight * member_weight[owner.clamp_min(0)], torch.zeros_like(weight))
        owner = new_owner
        width = int(pooler.width)
        layers.append(PoolingLayer(layer=record.layer, width=width, n_in=n, n_out=k,
                                   real_out=int((~record.pooled.mask[0]).sum()), pooled=width < n,
                                   owner=owner.clone(), weight=weight.clone(), max_error=err))
    return layers


def token_strings(hub, tokens: torch.Tensor) -> List[str]:
    """Display text of each token: sentencepiece's word marker becomes a leading space."""
    out = []
    kind = type(hub.bpe).__name__.lower() if hub.bpe is not None else None
    for t in tokens.tolist():
        piece = hub.src_dict[t]
        if t == hub.src_dict.eos():
            piece = " </s>"
        elif kind is None:
            piece = " " + piece
        elif kind.startswith("sentencepiece"):
            piece = piece.replace("\u2581", " ")
        else:                                   # a byte-level BPE: the token's own text
            piece = hub.bpe.decode(piece)
        out.append(piece)
    return out


def kept_passages(weight: torch.Tensor, texts: List[str], top: int = 10, min_len: int = 3,
                  threshold: float = 0.5) -> List[Tuple[int, int, float, str]]:
    """Longest runs of tokens whose weight is >= threshold * the layer's max:
    (start, end, mean weight, text), best first."""
    if weight.numel() == 0 or float(weight.max()) <= 0:
        return []
    hot = (weight >= threshold * float(weight.max())).tolist()
    runs, start = [], None
    for i, h in enumerate(hot + [False]):
        if h and start is None:
            start = i
        elif not h and start is not None:
            if i - start >= min_len:
                runs.append((start, i, float(weight[start:i].mean()), "".join(texts[start:i]).strip()))
            start = None
    runs.sort(key=lambda r: (-(r[1] - r[0]) * r[2], r[0]))
    return runs[:top]


def write_png(layers: List[PoolingLayer], path: str, title: str) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    T = layers[0].weight.numel()
    fig, axes = plt.subplots(len(layers), 1, figsize=(12, 1.0 + 1.1 * len(layers)), squeeze=False,
                             constrained_layout=True)
    for ax, info in zip(axes[:, 0], layers):
        w = info.weight.numpy().astype(np.float64)
        vmax = max(float(w.max()), 1e-12)
        im = ax.imshow(w[None, :], aspect="auto", cmap="YlOrRd", vmin=0.0, vmax=vmax,
                       interpolation="nearest", extent=(0, T, 0, 1))
        ax.set_yticks([])
        what = f"{info.n_in} -> {info.n_out}" if info.pooled else f"{info.n_in} (passed through)"
        ax.set_ylabel(f"layer {info.layer}", rotation=0, ha="right", va="center")
        ax.set_title(f"after layer {info.layer}: {what} tokens, weights sum to {w.sum():.1f}",
                     fontsize=9, loc="left")
        fig.colorbar(im, ax=ax, pad=0.01, fraction=0.03, label="weight")
    axes[-1, 0].set_xlabel("input token position")
    fig.suptitle(title, fontsize=10)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _shade(weight: float, vmax: float) -> str:
    a = 0.0 if vmax <= 0 else min(1.0, weight / vmax)
    return f"rgba(230,85,13,{a:.3f})"


def write_html(layers: List[PoolingLayer], texts: List[str], path: str, png_name: str,
               title: str, note: str) -> None:
    parts = [
        "<!DOCTYPE html><html><head><meta charset='utf-8'>",
        f"<title>{html.escape(title)}</title>",
        "<style>body{font-family:sans-serif;max-width:70em;margin:1em auto;line-height:1.6}"
        ".doc{font-family:serif;border:1px solid #ccc;padding:.6em;max-height:30em;overflow-y:auto}"
        "span.t{border-radius:2px}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
        f"<p>{html.escape(note)}</p>",
        f"<p><img src='{html.escape(png_name)}' style='max-width:100%' alt='pooling weights per "
        "input token'></p>",
        "<p>Each token is shaded by its weight in the pooled output it belongs to (darkest = the "
        "layer's largest weight; hover for the value and the output index). Weights are products "
        "along the pooling path, so later layers are fainter.</p>",
    ]
    for info in layers:
        w = info.weight
        vmax = float(w.max()) if w.numel() else 0.0
        what = (f"{info.n_in} positions pooled to {info.n_out} ({info.real_out} real outputs)"
                if info.pooled else f"{info.n_in} positions, no wider than {info.width}: passed through")
        parts.append(f"<h2>After encoder layer {info.layer}</h2><p>{html.escape(what)}; token "
                     f"weights sum to {float(w.sum()):.2f}, largest {vmax:.3f}.</p>")
        passages = kept_passages(w, texts)
        if passages and info.pooled:
            parts.append("<p>Most-kept passages:</p><ol>")
            for start, end, mean, text in passages:
                parts.append(f"<li>tokens {start}-{end - 1} (mean weight {mean:.3f}): "
                             f"{html.escape(text)}</li>")
            parts.append("</ol>")
        spans = []
        for i, text in enumerate(texts):
            wi = float(w[i])
            spans.append(f"<span class='t' style='background:{_shade(wi, vmax)}' "
                         f"title='token {i}: weight {wi:.4f}, output {int(info.owner[i])}'>"
                         f"{html.escape(text)}</span>")
        parts.append("<div class='doc'>" + "".join(spans) + "</div>")
    parts.append("</body></html>")
    with open(path, "w", encoding="utf-8") as out:
        out.write("\n".join(parts))


def highlight(hub, text: str, out_dir: str, name: str = "document",
              final_dir: Optional[str] = None) -> dict:
    """Write OUT/highlight.html, OUT/highlight.png, OUT/weights.json for one raw document.

    ``final_dir``: where the files will be once ``out_dir`` (a staging folder) is moved there;
    the paths recorded in weights.json and returned are in it (default: ``out_dir``)."""
    if not text.strip():
        raise HighlightError(f"{name} is empty: nothing to highlight")
    model = hub.models[0]
    model.eval()
    full = hub.encode(" ".join(text.split()))
    tokens = hub.encode_document(text, name)
    truncated = full.numel() - tokens.numel()
    device = next(model.parameters()).device
    layers = pooling_weights(model, tokens.unsqueeze(0).to(device))
    texts = token_strings(hub, tokens)
    os.makedirs(out_dir, exist_ok=True)
    png = os.path.join(out_dir, "highlight.png")
    page = os.path.join(out_dir, "highlight.html")
    title = f"Pooling weights of {name} ({tokens.numel()} tokens)"
    note = (f"The model read {tokens.numel()} tokens" +
            (f"; the last {truncated} tokens of the document were cut (max source positions) and "
             "are not shown." if truncated else "."))
    write_png(layers, png, title)
    write_html(layers, texts, page, os.path.basename(png), title, note)
    result = {
        "document": name,
        "tokens": tokens.numel(),
        "truncated_tokens": truncated,
        "layers": [{
            "layer": info.layer, "width": info.width, "n_in": info.n_in, "n_out": info.n_out,
            "real_outputs": info.real_out, "pooled": info.pooled,
            "weight_sum": float(info.weight.sum()), "max_replay_error": info.max_error,
            "owner": info.owner.tolist(), "weight": [round(float(v), 8) for v in info.weight],
        } for info in layers],
        "pieces": texts,
        "html": os.path.join(final_dir or out_dir, os.path.basename(page)),
        "png": os.path.join(final_dir or out_dir, os.path.basename(png)),
    }
    with open(os.path.join(out_dir, "weights.json"), "w", encoding="utf-8") as out:
        json.dump(result, out)
    return result
