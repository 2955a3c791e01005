#!/usr/bin/env python
"""Show which input tokens the encoder's poolers kept: the paper's "highlighting". Installed as
``pyramidion-highlight`` (deep_pyramidion/commands.py); this wrapper keeps the command lines written
from a checkout working.

    python scripts/highlight.py --checkpoint runs/aclsum/checkpoint_best.pt --data data-bin/aclsum \\
        --input data/aclsum/test-A.src --line 1 --out highlight/

The command line is deep_pyramidion/model_cli.py (highlight_main); what a weight is:
deep_pyramidion/analysis/highlight.py. --help lists the options.
"""
import sys

from deep_pyramidion.model_cli import highlight_main

if __name__ == "__main__":
    sys.exit(highlight_main(prog="scripts/highlight.py"))
