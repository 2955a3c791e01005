"""The installed commands (deep_pyramidion/commands.py, the one table setup.py builds its console
scripts from): every row is a script in the venv's bin that runs its row's function; every
``--help`` exits 0, shows an example command line and prints nothing of fairseq's (the commands
parse their arguments before importing torch or fairseq); each new command does a small real job
with the same result as the ``scripts/*.py`` command line it took over; README and
docs/architecture.md list every command."""
import ast
import hashlib
import importlib
import json
import os
import re
import sys
from pathlib import Path

import pytest

from deep_pyramidion.commands import COMMANDS
from tests.support.generate_logs import GENERATE_LOG, REFS
from tests.support.generate_logs import write as write_lines
from tests.support.paths import REPO, SCRIPTS, VENV_BIN
from tests.support.prepared import fake_aclsum, paper, record
from tests.support.processes import run_process, subprocess_env

PREMOVE = REPO / "tests" / "data" / "premove"
# The rows whose module sits inside fairseq_plugin/ (importing it imports fairseq): their --help
# is correct but not quiet until their command line moves beside the others (model_cli.py).
LOUD_HELP = {}   # command -> why its --help still prints fairseq's log (none today)
LOG_LINE = re.compile(r"^(DEBUG|INFO|WARNING|ERROR|CRITICAL)[: ]|^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d \| ",
                      re.M)


def run(argv, cwd=REPO):
    return run_process(argv, cwd=cwd, env=subprocess_env(OMP_NUM_THREADS="1"))


def script(name):
    return [sys.executable, SCRIPTS / name]


def installed(name):
    path = VENV_BIN / name
    assert path.exists(), f"{name} is not installed in {VENV_BIN}: run `make install` (or pip install -e .)"
    return [path]


def setup_console_scripts(monkeypatch):
    """The console scripts setup.py hands to setuptools (setup.py run with setup() captured)."""
    import setuptools

    captured = {}
    monkeypatch.setattr(setuptools, "setup", lambda **kwargs: captured.update(kwargs))
    monkeypatch.chdir(REPO)
    path = REPO / "setup.py"
    exec(compile(path.read_text(), str(path), "exec"), {"__file__": str(path), "__name__": "__main__"})
    return captured["entry_points"]["console_scripts"]


# --------------------------------------------------------------------------- the table


def test_table_is_a_literal_that_setup_py_installs(monkeypatch):
    tree = ast.parse((REPO / "deep_pyramidion" / "commands.py").read_text())
    assert not [n for n in ast.walk(tree) if isinstance(n, (ast.Import, ast.ImportFrom))], \
        "commands.py must import nothing: setup.py reads it before the package's requirements exist"
    assert setup_console_scripts(monkeypatch) == [f"{name}={target}" for name, (target, _) in COMMANDS.items()]
    for name, (target, summary) in COMMANDS.items():
        assert name.startswith("pyramidion-") and summary.strip() and "\n" not in summary, name
        module, function = target.split(":")
        assert callable(getattr(importlib.import_module(module), function)), target


@pytest.mark.parametrize("name", COMMANDS)
def test_every_command_is_an_installed_console_script_of_its_row(name):
    module, function = COMMANDS[name][0].split(":")
    text = installed(name)[0].read_text()
    assert f"from {module} import {function}" in text, \
        f"{name} in {VENV_BIN} runs something else: reinstall (make install)\n{text}"


@pytest.mark.parametrize("argv", [[name] for name in COMMANDS]
                         + [["pyramidion-prepare", "aclsum"], ["pyramidion-prepare", "arxiv-pubmed"]],
                         ids=" ".join)
def test_help_shows_an_example_and_nothing_of_fairseq(argv):
    name = argv[0]
    if name in LOUD_HELP:
        pytest.xfail(LOUD_HELP[name])
    proc = run(installed(name) + argv[1:] + ["--help"])
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stderr == "", proc.stderr[-2000:]
    assert not LOG_LINE.search(proc.stdout) and "tensorboardX" not in proc.stdout, proc.stdout[:2000]
    assert proc.stdout.startswith(f"usage: {' '.join(argv)} "), proc.stdout[:300]
    example = re.compile(rf"^\s+{re.escape(' '.join(argv))} \S", re.M)
    assert example.search(proc.stdout), f"no example command line in {argv} --help"
    assert "exit status" in proc.stdout.lower() or "Exit status" in proc.stdout


def test_commands_parse_their_arguments_before_importing_torch_or_fairseq():
    """Importing a command's module, its --help and a usage error load neither torch nor fairseq."""
    rows = {name: target for name, (target, _) in COMMANDS.items() if name not in LOUD_HELP}
    code = ("import contextlib, importlib, io, json, sys\n"
            "seen = {}\n"
            f"for name, target in {rows!r}.items():\n"
            "    module, function = target.split(':')\n"
            "    main = getattr(importlib.import_module(module), function)\n"
            "    for argv in (['--help'], ['--no-such-flag']):\n"
            "        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):\n"
            "            try:\n"
            "                main(argv)\n"
            "            except SystemExit:\n"
            "                pass\n"
            "    seen[name] = [m for m in ('torch', 'fairseq') if m in sys.modules]\n"
            "print(json.dumps(seen))\n")
    proc = run([sys.executable, "-c", code])
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert json.loads(proc.stdout) == {name: [] for name in rows}


def test_usage_error_is_quick_and_one_line():
    proc = run(installed("pyramidion-convert") + ["SRC"])
    assert proc.returncode == 2
    assert not LOG_LINE.search(proc.stderr), proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith("pyramidion-convert: error: ")
    proc = run(installed("pyramidion-prepare"))
    assert proc.returncode == 2 and "SOURCE" in proc.stderr.strip().splitlines()[-1]
    model = ["--checkpoint", "no-such.pt", "--data", PREMOVE]
    for argv in (["pyramidion-summarize"] + model, ["pyramidion-highlight"] + model + ["--text", "a", "--out", "o"]):
        proc = run(installed(argv[0]) + argv[1:])   # every usage check comes before fairseq loads
        assert proc.returncode == 2 and not LOG_LINE.search(proc.stderr), proc.stderr
        assert proc.stderr.strip().splitlines()[-1] == f"{argv[0]}: error: --checkpoint no-such.pt: no such file"


def test_earlier_entry_points_still_work():
    """Installs made before the table point at deep_pyramidion.fairseq_plugin.cli; export_hf.py
    imports its shared flags from there."""
    from deep_pyramidion import model_cli
    from deep_pyramidion.fairseq_plugin import cli

    for name in ("summarize_main", "convert_main", "highlight_main", "_add_model_args",
                 "_check_model_args", "_logging"):
        assert getattr(cli, name) is getattr(model_cli, name)


def test_readme_and_architecture_list_every_command():
    readme = (REPO / "README.md").read_text()
    architecture = (REPO / "docs" / "architecture.md").read_text()
    for name in COMMANDS:
        assert f"`{name}`" in readme, f"README.md does not list {name}"
        assert f"`{name}`" in architecture, f"docs/architecture.md does not list {name}"


# --------------------------------------------------------------------------- the same jobs


def digest(root: Path, skip=()):
    """{path relative to root: sha256} of every file under root, but ``skip``."""
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file() and p.name not in skip}


def twice(tmp_path, command, wrapper, out="out", skip=()):
    """Run the installed command and the script it took over, each in a folder of its own with the
    same relative output path; returns both (stdout with the folder replaced, digest of out)."""
    results = []
    for kind, argv in (("command", command), ("script", wrapper)):
        cwd = tmp_path / kind
        cwd.mkdir()
        proc = run(argv, cwd=cwd)
        assert proc.returncode == 0, (argv, proc.stderr[-3000:])
        results.append((proc.stdout.replace(str(cwd), "CWD"), digest(cwd / out, skip) if out else None))
    return results


def test_prepare_aclsum_is_prepare_aclsum_py(tmp_path):
    data = fake_aclsum(tmp_path / "ds", {
        "train": [("t1", paper(["Body one. More text."], "Abstract one.")),
                  ("t2", paper(["Body two."], "Abstract two. Second sentence."))],
        "val": [("v1", paper(["Dev body."], "Dev abstract."))],
        "test": [("x1", paper(["Test body."], "Test abstract.")), ("x2", None)]})
    flags = ["--out", "out", "--data-dir", data, "--max-source-words", "3"]
    (out_a, tree_a), (out_b, tree_b) = twice(
        tmp_path, installed("pyramidion-prepare") + ["aclsum"] + flags, script("prepare_aclsum.py") + flags)
    assert out_a == out_b and tree_a == tree_b
    assert {"train.src", "dev-0.tgt", "test-A.ids", "prepare.json", "skipped.tsv"} <= set(tree_a)


def test_prepare_arxiv_pubmed_is_prepare_arxiv_pubmed_py(tmp_path):
    release = tmp_path / "release"
    release.mkdir()
    for split in ("train", "val", "test"):
        (release / f"{split}.txt").write_text("".join(
            record(f"{split}{i}", [f"article {i} of {split} .", "more text ."],
                   [f"<S> abstract {i} . </S>"]) + "\n" for i in range(2)))
    flags = ["--input", release, "--out", "out"]
    (out_a, tree_a), (out_b, tree_b) = twice(
        tmp_path, installed("pyramidion-prepare") + ["arxiv-pubmed"] + flags,
        script("prepare_arxiv_pubmed.py") + flags)
    assert out_a == out_b and tree_a == tree_b
    assert {"train.src", "dev-0.src", "test-A.tgt"} <= set(tree_a)


def test_preprocess_is_preprocess_py(tmp_path):
    raw = tmp_path / "raw"
    raw.mkdir()
    for split, n in (("train", 10), ("dev-0", 2), ("test-A", 2)):
        docs = [" ".join(f"w{(7 * i + j) % 40}" for j in range(20 + 3 * i)) for i in range(n)]
        write_lines(raw / f"{split}.src", docs)
        write_lines(raw / f"{split}.tgt", [d.split()[0] + " . <q> " + d.split()[1] + " ." for d in docs])
    flags = ["--data", raw, "--out", "bin", "--vocab-size", "40"]
    # spm.model and preprocess.log record the paths they were made from; spm.vocab holds the pieces
    (out_a, tree_a), (out_b, tree_b) = twice(
        tmp_path, installed("pyramidion-preprocess") + flags, script("preprocess.py") + flags,
        out="bin", skip=("spm.model", "preprocess.log"))
    assert out_a == out_b and tree_a == tree_b
    assert {"train.src-tgt.src.bin", "test-A.src-tgt.tgt.idx", "dict.src.txt", "spm.vocab"} <= set(tree_a)
    check = [installed("pyramidion-preprocess") + ["--check", tmp_path / "command" / "bin"],
             script("preprocess.py") + ["--check", tmp_path / "command" / "bin"]]
    assert run(check[0]).stdout == run(check[1]).stdout != ""


def test_score_is_score_py(tmp_path):
    hyp = write_lines(tmp_path / "hyp.txt", ["the pooling layer selects tokens .", "long documents .",
                                             "results improve on arxiv and pubmed ."])
    ref = write_lines(tmp_path / "ref.tgt", REFS)
    flags = ["--hyp", hyp, "--ref", ref, "--bootstrap", "20", "--lead-source", ref]
    a = run(installed("pyramidion-score") + flags)
    b = run(script("score.py") + flags)
    assert a.returncode == b.returncode == 0, a.stderr + b.stderr
    assert a.stdout == b.stdout and "ROUGE" in a.stdout.upper()


def test_check_output_is_the_generate_output_check(tmp_path):
    path = tmp_path / "generate-test-A.txt"
    path.write_text(GENERATE_LOG)
    old = [sys.executable, "-m", "deep_pyramidion.eval.generate_output", "--check", path]
    for expected, status in (("3", 0), ("4", 3)):
        a = run(installed("pyramidion-check-output") + [path, "--expected", expected])
        b = run(old + ["--expected", expected])
        assert a.returncode == b.returncode == status, a.stderr + b.stderr
        assert a.stdout == b.stdout and a.stderr == b.stderr
    assert a.stderr.startswith("error: ") and "3" in a.stderr


def test_highlight_is_highlight_py(tmp_path):
    text = " ".join(f"w{i % 40}" for i in range(120))
    flags = ["--checkpoint", PREMOVE / "topk.pt", "--data", PREMOVE, "--no-bpe", "--text", text,
             "--out", "out"]
    (_, tree_a), (_, tree_b) = twice(tmp_path, installed("pyramidion-highlight") + flags,
                                     script("highlight.py") + flags, skip=("highlight.png", "weights.json"))
    assert tree_a == tree_b and set(tree_a) == {"highlight.html"}
    weights = [json.loads((tmp_path / kind / "out" / "weights.json").read_text().replace(str(tmp_path / kind), "CWD"))
               for kind in ("command", "script")]
    assert weights[0] == weights[1]
    assert weights[0]["tokens"] == 121 and [layer["pooled"] for layer in weights[0]["layers"]] == [True, True]
    assert (tmp_path / "command" / "out" / "highlight.png").stat().st_size > 0
