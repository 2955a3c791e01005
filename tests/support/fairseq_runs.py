"""The seed's command lines (tests/seed_commands.txt) and the sizes the tests run them at."""
import shlex
from pathlib import Path

from tests.support.paths import USER_DIR, console_script as fairseq_cli
# the runner lives in processes.py; imported here too for the files that take it from here
from tests.support.processes import run, subprocess_env  # noqa: F401

SEED_COMMANDS = Path(__file__).resolve().parents[1] / "seed_commands.txt"
# sizes only: everything else in the seed's command lines stays as written
SMALL_MODEL = [
    "--encoder-embed-dim", "32", "--encoder-ffn-embed-dim", "64", "--encoder-attention-heads", "2",
    "--decoder-embed-dim", "32", "--decoder-ffn-embed-dim", "64", "--decoder-attention-heads", "2",
]
# split name -> number of documents; test-1 .. test-16 are generated in batches of 8 by
# test_keep_last_batch.py, so their last batch holds 1, 6, 5 and 8 documents
SPLIT_SIZES = {"train": 48, "dev-0": 13, "test-A": 6, "test-1": 1, "test-6": 6, "test-13": 13,
               "test-16": 16}
LONG_DOC_TOKENS = 3000  # test-A holds one document longer than the training --max-source-positions


def seed_command(section: str, data, ckpt=None, spm_model=None):
    """argv of the seed's ``[section]`` command with only data, user-dir, checkpoint, spm replaced."""
    text = SEED_COMMANDS.read_text()
    body = text.split(f"[{section}]\n", 1)[1].split("\n[", 1)[0]
    argv = shlex.split(body.replace("\\\n", " "))
    argv[0] = fairseq_cli(argv[0])
    out = []
    for i, arg in enumerate(argv):
        prev = argv[i - 1] if i else None
        if arg == "${DATA}":
            arg = str(data)
        elif prev == "--user-dir":
            arg = USER_DIR
        elif prev == "--path":
            arg = str(ckpt)
        elif arg == "${SPM_MODEL}":
            arg = str(spm_model)
        out.append(arg)
    return out
