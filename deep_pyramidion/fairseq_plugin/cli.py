"""The adapter's command lines now live in deep_pyramidion/model_cli.py, outside this package, so
that their ``--help`` and usage errors come before fairseq is imported. This module keeps the names
for what imports them from here: the console scripts of installs made before the move
(``deep_pyramidion.fairseq_plugin.cli:summarize_main``, ``...:convert_main``) and
``export_hf.py``."""
from deep_pyramidion.model_cli import (  # noqa: F401
    CONVERT_DOC, HIGHLIGHT_DOC, HIGHLIGHT_FILES, SUMMARIZE_DOC, _add_model_args, _check_model_args,
    _load_hub, _logging, build_parser, convert_main, highlight_main, read_document, read_documents,
    summarize_main,
)
