#!/usr/bin/env python
"""Show which input tokens the encoder's poolers kept: the paper's "highlighting".

    python scripts/highlight.py --checkpoint runs/aclsum/checkpoint_best.pt --data data-bin/aclsum \\
        --input data/aclsum/test-A.src --line 1 --out highlight/

The command line is deep_pyramidion/fairseq_plugin/cli.py (highlight_main); what a weight is:
deep_pyramidion/analysis/highlight.py. --help lists the options.
"""
import sys

from deep_pyramidion.fairseq_plugin.cli import highlight_main

if __name__ == "__main__":
    sys.exit(highlight_main())
