#!/usr/bin/env python
"""Thin wrapper of ``pyramidion-prepare arxiv-pubmed``: see ``--help`` and
deep_pyramidion/data/cli.py (prepare_arxiv_pubmed_main)."""
import sys

from deep_pyramidion.data.cli import prepare_arxiv_pubmed_main

if __name__ == "__main__":
    sys.exit(prepare_arxiv_pubmed_main())
