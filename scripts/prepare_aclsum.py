#!/usr/bin/env python
"""Thin wrapper of ``pyramidion-prepare aclsum``: see ``--help`` and deep_pyramidion/data/cli.py
(prepare_aclsum_main)."""
import sys

from deep_pyramidion.data.cli import prepare_aclsum_main

if __name__ == "__main__":
    sys.exit(prepare_aclsum_main())
