"""``python -m benchmarks``: the model tables (train, encoder, generate, decoder, profile).

The code is in benchmarks/cli.py, so that it can be imported (``benchmarks.cli.main(argv)``)
without running; this file only runs it."""
from benchmarks.cli import main

main()
