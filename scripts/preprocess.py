#!/usr/bin/env python
"""Thin wrapper of ``pyramidion-preprocess``: see ``--help`` and deep_pyramidion/data/cli.py
(preprocess_main)."""
import sys

from deep_pyramidion.data.cli import preprocess_main

if __name__ == "__main__":
    sys.exit(preprocess_main(prog="preprocess.py"))
