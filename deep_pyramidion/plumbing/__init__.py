"""The floor under every room of the package: what the data, evaluation and analysis code, the
model commands and both adapters share, and nothing else.

    errors  every error class of the package, all under :class:`PyramidionError` (an expected
            failure: bad input, a bad flag, a bad file; the commands end it with one line)
    lines   the one rule for a document line, strict UTF-8 reading with line and byte offset,
            JSON lines, whitespace normalisation
    files   writing without destroying: atomic file write and copy, output folders built beside
            the old one and swapped in, the one rule for what an output may replace
    cli     the command-line harness: exit codes, one-line errors, logging set-up, ``run_cli``

It imports the standard library only: no torch, no fairseq, no other module of deep_pyramidion
(tests/unit/test_import_boundaries.py checks it), so any room may import it and it imports none
of them. This file imports nothing, so that importing one module of the floor loads only that one
(a Hugging Face export copies the modules it imports, file by file).
"""
