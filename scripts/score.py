#!/usr/bin/env python
"""ROUGE-1/2/L/Lsum F1 with bootstrap intervals; thin wrapper of ``pyramidion-score``: see
``--help`` and deep_pyramidion/eval/cli.py."""
import sys

from deep_pyramidion.eval.cli import score_main

if __name__ == "__main__":
    sys.exit(score_main(prog="score.py"))
