"""Benchmarks of DeepPyramidion: the figures of BENCHMARKS.md and the commands that print them.

Run from the repository root (the folder is not installed with the package, so it never lands in
a user's site-packages):

    python -m benchmarks [flags]         the model tables: train, encoder, generate, decoder,
                                         profile (--help lists the flags; --quick is a smoke run)
    python -m benchmarks --from-json A.json B.json [--plots DIR]
                                         the tables (and plots) of earlier runs, measuring nothing
    python -m benchmarks.topk [flags]    the successive-halving top-k operator table

Layout (one file per table, the measuring shared, as Liger-Kernel's benchmark/scripts):

    common.py    timing (alone, and side by side in rotating rounds), the memory probe, the load
                 average, machine facts, the forked-process runner, JSON reading and writing
    models.py    the compared models (fairseq pyramidion / blockwise / full, Hugging Face LED),
                 random batches, the one training step
    memory.py    the memory estimate that skips what cannot fit, calibrated on measured peaks
    rows.py      the result rows as the reports read them; the train/encoder table layout
    train.py, encoder.py, generate.py, decoder.py, profile.py
                 one table each: its configurations, what one run does, its report section
    cli.py       flags, plan, orchestration and report of the model tables (__main__.py runs it)
    topk.py      the top-k operator table (its own command: other flags, no models)

A JSON written by ``--json`` (or by the scripts these replaced, scripts/benchmark.py and
scripts/bench_topk.py) is ``{"meta": ..., "results": [row, ...]}``; the reports read only the
rows, so a JSON of an earlier run prints the same tables again.
"""
