"""profile: torch.profiler over one generate call (the largest of --beams, the longest of
--gen-lengths) and one training step (the longest of --lengths), pyramidion, blockwise and led:
inclusive time of the encoder (and of its pooling), the decoder's self-attention,
cross-attention, feed-forward, output projection, and the rest (beam search bookkeeping and
log-softmax; loss, backward and optimizer in training).

It says where the time of the other tables goes. The calls profiled are the generate table's
runner and the train table's step (benchmarks.models.train_step, with its phases labelled), so the
profile dissects the same work the tables time.
"""
from __future__ import annotations

import time

from benchmarks import generate
from benchmarks.models import random_batch, train_step

PAIRED = False


def specs(args, models, lengths, gen_lengths, beams):
    T, beam = max(gen_lengths), max(beams)
    out = []
    for mode in ("generate", "train"):
        for m in models:
            if m == "full":
                continue
            out.append({"table": "profile", "model": m,
                        "length": T if mode == "generate" else max(lengths), "beam": beam,
                        "mode": mode,
                        "batch": args.gen_batch if mode == "generate" else args.batch})
    return out


def label_modules(model, kind):
    """Forward hooks that wrap the interesting modules in profiler ranges "bench::<name>".
    -> (names, hook handles to remove)"""
    import torch

    if kind == "led":
        enc, dec = model.led.encoder, model.led.decoder
        groups = {"encoder": [enc]}
        projection = model.lm_head
    else:
        dec = model.decoder
        groups = {"encoder": [model.encoder],
                  "encoder: of which pooling": list(getattr(model.encoder, "poolers", {}).values())}
        projection = dec.output_projection
    groups.update({
        "decoder self-attention": [layer.self_attn for layer in dec.layers],
        "decoder cross-attention": [layer.encoder_attn for layer in dec.layers],
        "decoder feed-forward": [m for layer in dec.layers for m in (layer.fc1, layer.fc2)],
        "output projection": [projection],
    })
    handles = []
    for name, modules in groups.items():
        for m in modules:
            stack = []

            def pre(_m, _inp, name=name, stack=stack):
                rf = torch.autograd.profiler.record_function("bench::" + name)
                rf.__enter__()
                stack.append(rf)

            def post(_m, _inp, _out, stack=stack):
                stack.pop().__exit__(None, None, None)

            handles.append(m.register_forward_pre_hook(pre))
            handles.append(m.register_forward_hook(post))
    return list(groups), handles


def measure(spec, args, model, d, env, probe):
    from torch.profiler import ProfilerActivity, profile

    kind, T, mode = spec["model"], spec["length"], spec["mode"]
    labels, handles = label_modules(model, kind)
    if mode == "generate":
        fn = generate.runner(dict(spec, table="generate"), args, model, d, env)
    else:
        batch = random_batch(args.batch, T, args.sizes["vocab"], args.out_len, env.device)
        fn = train_step(kind, model, d, batch, args.sizes["vocab"], env.autocast,
                        label_phases=True)
        labels = labels + ["loss + backward", "optimizer"]
    fn()  # warm-up
    env.sync()
    t0 = time.perf_counter()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        fn()
        env.sync()
    wall = time.perf_counter() - t0
    for h in handles:
        h.remove()
    # plain timing without the profiler's overhead
    t0 = time.perf_counter()
    fn()
    env.sync()
    plain = time.perf_counter() - t0
    events = prof.key_averages()
    totals = {ev.key[len("bench::"):]: ev.cpu_time_total / 1e6 for ev in events
              if ev.key.startswith("bench::")}
    for ev in events:  # fairseq calls the encoder without __call__ (no hooks)
        if ev.key == "EnsembleModel: forward_encoder" and not totals.get("encoder"):
            totals["encoder"] = ev.cpu_time_total / 1e6
    shares = {name: totals.get(name, 0.0) for name in labels}
    shares["rest"] = max(0.0, wall - sum(v for k, v in shares.items() if ": of which" not in k))
    top_ops = [(ev.key, ev.self_cpu_time_total / 1e6) for ev in
               sorted(events, key=lambda e: -e.self_cpu_time_total)
               if not ev.key.startswith("bench::")][:12]
    return {"profiled_s": wall, "plain_s": plain, "parts_s": shares, "top_ops_self_s": top_ops,
            "min_s": plain}


def report(rows, args, notes):
    prof = [r for r in rows.ok if r["table"] == "profile"]
    if not prof:
        return []
    out = ["\n### Profile (torch.profiler, inclusive CPU time of one call, s)\n"]
    parts = []
    for r in prof:
        for p in r["parts_s"]:
            if p not in parts:
                parts.append(p)
    out.append("| mode | model | input | beam | " + " | ".join(parts) +
               " | profiled total | unprofiled |")
    out.append("|" + "---|" * (len(parts) + 6))
    for r in prof:
        tot = r["profiled_s"]
        cells = [r["mode"], r["model"], str(r["length"]), str(r["beam"])]
        cells += [f"{r['parts_s'].get(p, 0):.2f} ({100 * r['parts_s'].get(p, 0) / tot:.0f}%)"
                  for p in parts]
        cells += [f"{tot:.2f}", f"{r['plain_s']:.2f}"]
        out.append("| " + " | ".join(cells) + " |")
    for r in prof:
        ops = ", ".join(f"{k} {v:.2f}" for k, v in r["top_ops_self_s"][:8])
        out.append(f"\n{r['mode']} {r['model']}: top ops by self time (s): {ops}")
    return out
