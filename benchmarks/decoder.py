"""decoder: the decoder alone, incremental decoding of --out-len steps for one document with a
beam of --beams rows over a random encoder_out of 512 or of 8192 positions (the pyramidion's and
the baseline's encoder widths at 8k input); time per generated token with and without the 32k
output projection.

It separates what the pooling can speed up (cross-attention over fewer positions) from what every
model pays alike (self-attention, feed-forward, the output projection).
"""
from __future__ import annotations

from benchmarks.common import ints, time_runs

PAIRED = False  # one model (the pyramidion's decoder), two encoder widths


def specs(args, beams):
    return [{"table": "decoder", "model": "pyramidion", "length": S, "beam": beam}
            for beam in beams for S in ints(args.decoder_widths)]


def encoder_out(S, beam, dim, device):
    """A random encoder output of S positions for one source repeated over beam rows, laid out
    as the encoder's reorder_encoder_out leaves it in beam search: ``rows_per_source`` tells the
    decoder that beam rows share a source, so it projects cross-attention keys/values once."""
    import torch

    g = torch.Generator().manual_seed(0)
    enc_x = torch.randn(S, 1, dim, generator=g).to(device).expand(S, beam, -1)
    return {"encoder_out": [enc_x.contiguous()],
            "encoder_padding_mask": [torch.zeros(beam, S, dtype=torch.bool, device=device)],
            "encoder_embedding": [], "encoder_states": [], "src_tokens": [], "src_lengths": [],
            "row_source": [torch.zeros(beam, dtype=torch.long, device=device)],
            "rows_per_source": [torch.tensor([beam], dtype=torch.long)]}


def measure(spec, args, model, d, env, probe):
    """Incremental decoding of out_len steps over a random encoder_out of `length` positions."""
    import torch

    beam, S, out_len = spec["beam"], spec["length"], args.out_len
    model.eval()
    dec = model.decoder
    enc = encoder_out(S, beam, args.sizes["dim"], env.device)
    eos = d.eos()

    def decode(features_only):
        tokens = torch.full((beam, out_len + 1), eos, dtype=torch.long, device=env.device)
        state = {}
        with torch.no_grad(), env.autocast():
            for t in range(out_len):
                x, _ = dec(tokens[:, : t + 1], encoder_out=enc, incremental_state=state,
                           features_only=features_only)
                if features_only:
                    tokens[:, t + 1] = x[:, -1, :8].argmax(-1) + 4
                else:
                    lp = model.get_normalized_probs((x[:, -1:], None), log_probs=True)
                    tokens[:, t + 1] = lp[:, -1].argmax(-1)

    full = time_runs(lambda: decode(False), env.sync, args.warmup, args.repeat, probe)
    feats = time_runs(lambda: decode(True), env.sync, args.warmup, args.repeat, probe)
    out = dict(full)
    # what the decoder made of rows_per_source: keys/values once per source, as in beam search
    out["shared_kv"] = int(getattr(dec.layers[0].encoder_attn, "beam_size", 1)) > 1
    out["per_token_s"] = full["min_s"] / out_len
    out["per_token_no_proj_s"] = feats["min_s"] / out_len
    out["per_token_median_s"] = full["median_s"] / out_len
    return out


def report(rows, args, notes):
    if not rows.has("decoder"):
        return []
    out = ["\n### Decoder alone: time per generated token in ms (beam rows x one "
           "document, incremental decoding)\n",
           "| beam | encoder_out width | per token ms | per token without output "
           "projection ms | ratio to the widest |",
           "|---|---|---|---|---|"]
    dec = sorted([r for r in rows.ok if r["table"] == "decoder"],
                 key=lambda r: (r["beam"], r["length"]))
    for r in dec:
        widest = max((q for q in dec if q["beam"] == r["beam"]), key=lambda q: q["length"])
        out.append(f"| {r['beam']} | {r['length']} | {r['per_token_s'] * 1e3:.2f} | "
                   f"{r['per_token_no_proj_s'] * 1e3:.2f} | "
                   f"{widest['per_token_s'] / r['per_token_s']:.2f}x "
                   f"({widest['per_token_no_proj_s'] / r['per_token_no_proj_s']:.2f}x without "
                   f"the projection) |")
    return out
