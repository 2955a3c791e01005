"""encoder: the encoder alone, forward without gradients (LED: LEDModel's encoder).

What the pooling saves before any decoding: the pyramidion's later layers run over the kept
tokens only, the baselines' over every input token.
"""
from __future__ import annotations

from benchmarks.models import led_masks, random_batch
from benchmarks.rows import length_plot, length_table

PAIRED = True
TITLE = "Encoder forward (no gradients)"


def specs(args, models, lengths):
    return [{"table": "encoder", "model": m, "length": T, "batch": args.batch}
            for T in lengths for m in models]


def runner(spec, args, model, d, env):
    import torch

    src, lengths, _tgt, _prev = random_batch(args.batch, spec["length"], args.sizes["vocab"],
                                             args.out_len, env.device)
    attn, glob = led_masks(src)
    model.eval()

    def fn():
        with torch.no_grad(), env.autocast():
            if spec["model"] == "led":
                return model.get_encoder()(input_ids=src, attention_mask=attn,
                                           global_attention_mask=glob)
            return model.encoder(src, lengths)

    fn.info = {}
    return fn


def report(rows, args, notes):
    return length_table(rows, "encoder", TITLE, args, notes)


def plot(rows, args):
    return length_plot(rows, "encoder", "encoder forward", args)
