"""generate: beam search with --beams, every output forced to --out-len tokens (min_len =
max_len; fairseq's SequenceGenerator built in-process, LED's generate with min_new_tokens =
max_new_tokens = out_len + 1, so both run out_len + 1 decoder steps). Time per document = time
per call / --gen-batch.

Forcing the length makes every model decode the same number of steps, so the times compare the
models, not how soon a random model happens to emit eos.
"""
from __future__ import annotations

from benchmarks.models import MODELS, BASELINE, led_masks, random_batch
from benchmarks.rows import STYLE, fmt, plot_path, stat_key, tm

PAIRED = True
TITLE = "Generation"


def specs(args, models, gen_lengths, beams):
    return [{"table": "generate", "model": m, "length": T, "beam": beam, "batch": args.gen_batch}
            for T in gen_lengths for beam in beams for m in models]


def runner(spec, args, model, d, env):
    """One generate call as a closure; its ``info`` records the decoder steps it ran."""
    import torch

    beam, out_len = spec["beam"], args.out_len
    src, lengths, _tgt, _prev = random_batch(args.gen_batch, spec["length"], args.sizes["vocab"],
                                             out_len, env.device)
    info = {}
    model.eval()
    if spec["model"] == "led":
        attn, glob = led_masks(src)

        def fn():
            with torch.no_grad(), env.autocast():
                out = model.generate(
                    input_ids=src, attention_mask=attn, global_attention_mask=glob,
                    num_beams=beam, num_return_sequences=1, do_sample=False,
                    max_new_tokens=out_len + 1, min_new_tokens=out_len + 1,
                    length_penalty=1.0, no_repeat_ngram_size=0, use_cache=True)
            info["decoder_steps"] = out.shape[1] - 1  # minus the decoder start token
    else:
        from fairseq.sequence_generator import SequenceGenerator

        gen = SequenceGenerator([model], d, beam_size=beam, max_len_a=0, max_len_b=out_len,
                                min_len=out_len)
        sample = {"net_input": {"src_tokens": src, "src_lengths": lengths}}

        def fn():
            with torch.no_grad(), env.autocast():
                hyps = gen.generate([model], sample)
            info["decoder_steps"] = len(hyps[0][0]["tokens"])  # out_len tokens + eos
    fn.info = info
    return fn


def report(rows, args, notes):
    if not rows.has("generate"):
        return []
    key = stat_key(args)
    models = rows.models_in("generate")
    out = [f"\n### Generation: time per document in s ({args.stat}), beam search, "
           f"outputs forced to out_len tokens\n"]
    head = "| input | beam | " + " | ".join(f"{m} s/doc" for m in models) + " | " + \
        " | ".join(f"{m} / pyramidion" for m in models if m != "pyramidion") + \
        " | pyramidion peak MiB | blockwise peak MiB |"
    out.append(head)
    out.append("|" + "---|" * (head.count("|") - 1))
    combos = sorted({(r["length"], r["beam"]) for r in rows.all if r["table"] == "generate"})
    for T, beam in combos:
        cells = [str(T), str(beam)]
        pyr = rows.find("generate", "pyramidion", T, beam)
        for m in models:
            r = rows.find("generate", m, T, beam)
            if r is None:
                n = rows.note("generate", m, T, beam)
                if n:
                    notes.append(f"generate {m} {T} beam {beam}: {n}")
            cells.append(fmt(tm(r, key) / r.get("batch", 1), 3) if r else "n/a")
        for m in models:
            if m == "pyramidion":
                continue
            r = rows.find("generate", m, T, beam)
            cells.append(f"{tm(r, key) / tm(pyr, key):.2f}x" if r and pyr else "-")
        base = rows.find("generate", BASELINE, T, beam)
        cells += [fmt(pyr.get("peak_mib") if pyr else None, 0),
                  fmt(base.get("peak_mib") if base else None, 0)]
        out.append("| " + " | ".join(cells) + " |")
    return out


def plot(rows, args):
    """benchmark_generate.png: time per document, one bar per model, grouped by length and beam."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    key = stat_key(args)
    gen = [r for r in rows.ok if r["table"] == "generate"]
    if not gen:
        return None
    beams = sorted({r["beam"] for r in gen})
    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    models = [m for m in MODELS if any(r["model"] == m for r in gen)]
    width = 0.8 / max(1, len(models))
    lengths = sorted({r["length"] for r in gen})
    groups = [(T, b) for T in lengths for b in beams]
    for i, m in enumerate(models):
        vals = []
        for T, b in groups:
            r = next((r for r in gen if (r["model"], r["length"], r["beam"]) == (m, T, b)), None)
            vals.append(tm(r, key) / r.get("batch", 1) if r else 0)
        c, _ = STYLE[m]
        ax.bar([g + i * width for g in range(len(groups))], vals, width, color=c, label=m)
    ax.set_xticks([g + width * (len(models) - 1) / 2 for g in range(len(groups))])
    ax.set_xticklabels([f"{T} tokens\nbeam {b}" for T, b in groups])
    ax.set_ylabel("time per document (s)")
    ax.set_title(f"generation, outputs forced to {gen[0].get('decoder_steps', '?')} tokens")
    ax.grid(True, axis="y", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path = plot_path(rows, "generate", args)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
