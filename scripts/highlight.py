#!/usr/bin/env python
"""Show which input tokens the encoder's top-k poolers kept: the paper's "highlighting".

    python scripts/highlight.py --checkpoint runs/aclsum/checkpoint_best.pt --data data-bin/aclsum \\
        --input data/aclsum/test-A.src --line 1 --out highlight/
    python scripts/highlight.py --checkpoint CKPT --data DATA_BIN --text "raw document text" --out DIR

Writes OUT/highlight.html (the document with every token shaded by its weight, one section per
pooling layer, and the most-kept passages listed), OUT/highlight.png (a heat strip per pooling
layer over the token positions) and OUT/weights.json (the numbers).

What a weight is: a successive-halving pooler turns n inputs into k outputs, each output a
weighted sum of a group of inputs (phase 1 of the operator, ``tournament``, gives the groups and
weights; the groups partition the inputs, each group's weights sum to 1). A layer-1 output is a
mix of layer-0 outputs, each a mix of input tokens, so a token's weight at layer l is the product
of its weights along its path: token t -> layer-0 output o0(t) -> layer-1 output o1(o0(t)) ...
Every token's weight is in [0, 1] and the weights of a layer sum to its number of real
(non-padding) outputs. A token with weight near 1 is what its output carries forward (kept); a
token with weight near 0 was pooled away.

The encoder runs unchanged: forward hooks on the poolers record their inputs and outputs, and the
tournament is replayed on the recorded inputs with the pooler's own scorer and settings; the
script checks that the replay reproduces the pooler's output before drawing anything.
"""
import argparse
import html
import json
import logging
import os
import sys
from dataclasses import dataclass
from typing import List, Optional, Tuple

import torch

logger = logging.getLogger("highlight")

ROUNDTRIP_TOL = 1e-4  # max |replayed pooler output - real pooler output| (float32)


class HighlightError(Exception):
    pass


@dataclass
class PoolingLayer:
    layer: int            # encoder layer after which the pooler runs
    width: int            # the schedule's width
    n_in: int             # positions it received
    n_out: int            # positions it returned
    real_out: int         # outputs holding at least one real token
    pooled: bool          # False when n_in <= width (the pooler passes everything through)
    owner: torch.Tensor   # (T,) long: output of this layer each input token ends up in, -1 padding
    weight: torch.Tensor  # (T,) float64: the token's weight in that output
    max_error: float      # replayed vs real pooler output


def _pooler_groups(pooler, x: torch.Tensor, mask: torch.Tensor):
    """(idx (k, M), w (k, M), y_mask (k,)) of one pooler call on one document, as it computed them."""
    from deep_pyramidion.modules.pooling import SuccessiveHalvingPooler
    from deep_pyramidion.topk.torch_impl import gather_weighted_sum, tournament

    if not isinstance(pooler, SuccessiveHalvingPooler):
        raise HighlightError(f"pooler {type(pooler).__name__} is not the successive-halving top-k "
                             "pooler (--encoder-pooling topk): nothing to highlight")
    n = x.size(1)
    k = min(pooler.width, n)
    if k >= n:  # pass-through: output j is input j with weight 1 (0 for padding)
        idx = torch.arange(n).view(1, n, 1)
        w = (~mask).to(torch.float64).view(1, n, 1)
        return idx, w, mask.clone(), x
    scores = pooler.score(x)
    idx, w, _, y_mask = tournament(scores, k, mask, pooler.base, pooler.flip_right, pooler.sort_back)
    y = gather_weighted_sum(x, idx, w)
    return idx, w.to(torch.float64), y_mask, y


def pooling_weights(model, src_tokens: torch.Tensor) -> List[PoolingLayer]:
    """Run the encoder on one document (1, T) and return its pooling layers with token weights."""
    encoder = model.encoder
    poolers = getattr(encoder, "poolers", None)
    if poolers is None or len(poolers) == 0:
        raise HighlightError("this model has no pooling layers (trained with --encoder-pooling "
                             "none / --use-sparse-attn only_blockwise): nothing to highlight")
    if src_tokens.dim() != 2 or src_tokens.size(0) != 1:
        raise ValueError(f"src_tokens must be (1, T), got {tuple(src_tokens.shape)}")
    records = []
    handles = []
    for name, pooler in poolers.items():
        def hook(module, inputs, output, layer=int(name)):
            x, mask = inputs[0], inputs[1]
            records.append((layer, module, x.detach(), mask.detach(),
                            output[0].detach(), output[1].detach()))
        handles.append(pooler.register_forward_hook(hook))
    try:
        with torch.no_grad():
            lengths = torch.tensor([src_tokens.size(1)])
            encoder(src_tokens, src_lengths=lengths)
    finally:
        for handle in handles:
            handle.remove()
    if not records:
        raise HighlightError("the encoder ran but no pooler was called")
    records.sort(key=lambda r: r[0])

    T = src_tokens.size(1)
    owner = torch.arange(T)                       # token -> position in the current sequence
    weight = torch.ones(T, dtype=torch.float64)
    pad = src_tokens[0].eq(model.encoder.padding_idx)
    owner[pad] = -1
    weight[pad] = 0.0
    layers = []
    for layer, pooler, x, mask, y_real, y_mask_real in records:
        with torch.no_grad():
            idx, w, y_mask, y = _pooler_groups(pooler, x, mask)
        err = float((y.float() - y_real.float()).abs().max()) if y.numel() else 0.0
        if y.shape != y_real.shape or not torch.equal(y_mask, y_mask_real) or err > ROUNDTRIP_TOL:
            raise HighlightError(
                f"layer {layer}: replaying the tournament does not reproduce the pooler's output "
                f"(max error {err:.3g}); the pooler changed behaviour this script does not know")
        n = x.size(1)
        idx, w = idx[0], w[0]                      # (k, M)
        k, M = idx.shape
        member_owner = torch.full((n,), -1, dtype=torch.long)
        member_weight = torch.zeros(n, dtype=torch.float64)
        real = idx >= 0
        outs = torch.arange(k).view(k, 1).expand(k, M)
        member_owner[idx[real]] = outs[real]
        member_weight[idx[real]] = w[real]
        live = owner >= 0
        new_owner = torch.full_like(owner, -1)
        new_owner[live] = member_owner[owner[live]]
        weight = torch.where(live, weight * member_weight[owner.clamp_min(0)], torch.zeros_like(weight))
        owner = new_owner
        width = int(pooler.width)
        layers.append(PoolingLayer(layer=layer, width=width, n_in=n, n_out=k,
                                   real_out=int((~y_mask[0]).sum()), pooled=width < n,
                                   owner=owner.clone(), weight=weight.clone(), max_error=err))
    return layers


def token_strings(hub, tokens: torch.Tensor) -> List[str]:
    """Display text of each token: sentencepiece's word marker becomes a leading space."""
    out = []
    bpe = hub.bpe is not None
    for t in tokens.tolist():
        piece = hub.src_dict[t]
        if t == hub.src_dict.eos():
            piece = " </s>"
        elif bpe:
            piece = piece.replace("\u2581", " ")
        else:
            piece = " " + piece
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


def highlight(hub, text: str, out_dir: str, name: str = "document") -> dict:
    """Write OUT/highlight.html, OUT/highlight.png, OUT/weights.json for one raw document."""
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
        "html": page,
        "png": png,
    }
    with open(os.path.join(out_dir, "weights.json"), "w", encoding="utf-8") as out:
        json.dump(result, out)
    return result


def read_document(path: str, line: int) -> str:
    count = 0
    with open(path, encoding="utf-8") as stream:
        for count, text in enumerate(stream, start=1):
            if count == line:
                if not text.strip():
                    raise HighlightError(f"{path}:{line}: empty line")
                return text
    raise HighlightError(f"--line {line}: {path} has only {count} lines")


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--checkpoint", required=True, metavar="CKPT", help="fairseq checkpoint (.pt)")
    parser.add_argument("--data", required=True, metavar="DATA_BIN",
                        help="binarized data folder with the model's dictionary")
    parser.add_argument("--sentencepiece-model", metavar="SPM",
                        help="sentencepiece model (default: DATA_BIN/spm.model)")
    parser.add_argument("--no-bpe", action="store_true", help="the text is already in dictionary tokens")
    src = parser.add_mutually_exclusive_group(required=True)
    src.add_argument("--input", metavar="FILE", help="documents, one per line (see --line)")
    src.add_argument("--text", help="the document itself")
    parser.add_argument("--line", type=int, default=1, help="which line of --input (1-based, default 1)")
    parser.add_argument("--max-source-positions", type=int,
                        help="read up to N tokens (default: the checkpoint's)")
    parser.add_argument("--out", required=True, help="output folder")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logger.setLevel(logging.INFO)
    logging.getLogger("deep_pyramidion").setLevel(logging.INFO)
    if args.line < 1:
        parser.error("--line must be >= 1")
    if args.no_bpe and args.sentencepiece_model:
        parser.error("--no-bpe and --sentencepiece-model contradict each other: give one")
    if not os.path.isfile(args.checkpoint):
        parser.error(f"--checkpoint {args.checkpoint}: no such file")
    if args.input is not None and not os.path.isfile(args.input):
        parser.error(f"--input {args.input}: no such file")
    if args.max_source_positions is not None and args.max_source_positions < 2:
        parser.error("--max-source-positions must be >= 2")
    try:
        if args.input is not None:
            text = read_document(args.input, args.line)
            name = f"{os.path.basename(args.input)}:{args.line}"
        else:
            text, name = args.text, "--text"
        from deep_pyramidion.hub import from_pretrained

        overrides = {"cpu": True}
        if args.max_source_positions:
            overrides["max_source_positions"] = args.max_source_positions
        ckpt = os.path.abspath(args.checkpoint)
        hub = from_pretrained(os.path.dirname(ckpt), checkpoint_file=os.path.basename(ckpt),
                              data_name_or_path=os.path.abspath(args.data),
                              bpe=None if args.no_bpe else "sentencepiece",
                              sentencepiece_model=args.sentencepiece_model, **overrides)
        result = highlight(hub, text, args.out, name)
    except (HighlightError, FileNotFoundError, ValueError) as err:
        logger.error("%s", err)
        return 1
    for info in result["layers"]:
        logger.info("layer %d: %d -> %d tokens, weights sum to %.2f", info["layer"], info["n_in"],
                    info["n_out"], info["weight_sum"])
    logger.info("wrote %s and %s", result["html"], result["png"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
