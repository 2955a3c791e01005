"""Where things are: the repository, the plugin folder fairseq gets as --user-dir, the venv."""
import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
USER_DIR = str(REPO / "deep_pyramidion")
SCRIPTS = REPO / "scripts"
VENV_BIN = Path(sys.executable).parent


def console_script(name: str) -> str:
    """Path of a console script (fairseq-train, pyramidion-summarize, ...) beside the running
    interpreter, else the bare name (found on PATH)."""
    path = VENV_BIN / name
    return str(path) if path.exists() else name


assert os.path.isdir(USER_DIR), USER_DIR
