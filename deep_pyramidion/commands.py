"""The installed commands: one row per console script, ``name: ("module:function", summary)``.

setup.py builds its ``console_scripts`` from this table by reading the file (``ast``), without
importing the package, so this file holds the literal table and nothing else: no imports, no code
that runs. A new command is one row here, a ``main(argv=None) -> int`` in the module of its room
(``data/cli.py``, ``eval/cli.py``, ``model_cli.py``, ...), and a reinstall (``make install``,
``pip install -e .``) to create its script. docs/architecture.md ("Commands") says more.

Every command:
- parses its arguments before it imports torch or fairseq, so ``--help`` and a usage error are
  quick and print nothing of fairseq's (the modules named here import neither at import time);
- shows an example command line in its ``--help``, with the exit codes;
- ends an expected failure with one ``error: ...`` line (plumbing/cli.py: run_cli).

``scripts/*.py`` stay as thin wrappers around the same functions, so command lines written as
``python scripts/score.py ...`` keep working (tests/integration/test_commands.py checks both).
"""

COMMANDS = {
    "pyramidion-prepare": (
        "deep_pyramidion.data.cli:prepare_main",
        "ACLSum (aclsum) or arXiv / PubMed (arxiv-pubmed) -> text splits train / dev-0 / test-A",
    ),
    "pyramidion-preprocess": (
        "deep_pyramidion.data.cli:preprocess_main",
        "text splits -> binarized data (sentencepiece or a pretrained BART's BPE + fairseq-preprocess)",
    ),
    "pyramidion-score": (
        "deep_pyramidion.eval.cli:score_main",
        "ROUGE-1/2/L/Lsum F1 with bootstrap intervals, of hypotheses or a fairseq-generate output",
    ),
    "pyramidion-check-output": (
        "deep_pyramidion.eval.cli:check_output_main",
        "check that a fairseq-generate output is whole: one run, every document once",
    ),
    "pyramidion-summarize": (
        "deep_pyramidion.model_cli:summarize_main",
        "one document per line in, one summary per line out, with a trained checkpoint",
    ),
    "pyramidion-highlight": (
        "deep_pyramidion.model_cli:highlight_main",
        "which input tokens the encoder's poolers kept, as HTML, PNG and JSON",
    ),
    "pyramidion-convert": (
        "deep_pyramidion.model_cli:convert_main",
        "a pretrained BART (fairseq or Hugging Face) -> a long-input pyramidion",
    ),
    "pyramidion-export-hf": (
        "deep_pyramidion.model_cli:export_hf_main",
        "a fairseq-trained pyramidion -> a Hugging Face model folder (pip install -e '.[hf]')",
    ),
}
