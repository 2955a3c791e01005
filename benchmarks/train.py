"""train: one training step, forward + backward + AdamW step, token-level NLL summed over
--out-len target tokens (fairseq's cross_entropy criterion), dropout 0.1, attention dropout 0.1
(the seed's training settings).

The step is benchmarks.models.train_step, the same one the profile table dissects. Its first,
untimed run creates AdamW's state, so the memory of the timed step is that of a step in the middle
of training.
"""
from __future__ import annotations

from benchmarks.models import random_batch, train_step
from benchmarks.rows import length_plot, length_table

PAIRED = True  # the models of one length are timed side by side
TITLE = "Training step (forward + backward + AdamW)"


def specs(args, models, lengths):
    return [{"table": "train", "model": m, "length": T, "batch": args.batch}
            for T in lengths for m in models]


def runner(spec, args, model, d, env):
    batch = random_batch(args.batch, spec["length"], args.sizes["vocab"], args.out_len, env.device)
    fn = train_step(spec["model"], model, d, batch, args.sizes["vocab"], env.autocast)
    fn.info = {}
    return fn


def report(rows, args, notes):
    return length_table(rows, "train", TITLE, args, notes)


def plot(rows, args):
    return length_plot(rows, "train", "training step (fwd + bwd + AdamW)", args)
