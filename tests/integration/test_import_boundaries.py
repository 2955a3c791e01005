"""The layers of the package import only what they are allowed to (docs/architecture.md): the floor
(plumbing/) nothing of the package, the core neither fairseq nor transformers, evaluation and data
neither torch nor fairseq; and fairseq imports the package for --user-dir and gets everything
registered. Each check runs in a fresh interpreter, so nothing imported by the test process itself
counts."""
import subprocess
import sys

import pytest

CORE = ["deep_pyramidion", "deep_pyramidion.config", "deep_pyramidion.schedule",
        "deep_pyramidion.topk", "deep_pyramidion.modules", "deep_pyramidion.modules.poolers",
        "deep_pyramidion.bart",
        "deep_pyramidion.analysis.highlight"]
FLOOR = ["deep_pyramidion.plumbing", "deep_pyramidion.plumbing.errors",
         "deep_pyramidion.plumbing.lines", "deep_pyramidion.plumbing.files",
         "deep_pyramidion.plumbing.cli"]
PLAIN_PYTHON = ["deep_pyramidion.eval", "deep_pyramidion.eval.cli", "deep_pyramidion.data",
                "deep_pyramidion.data.cli", "deep_pyramidion.data.io", "deep_pyramidion.data.aclsum",
                "deep_pyramidion.data.arxiv_pubmed", "deep_pyramidion.data.binarize",
                "deep_pyramidion.data.sentences"]


def imported_after(modules, watched):
    code = ("import importlib, sys\n"
            f"for name in {modules!r}:\n    importlib.import_module(name)\n"
            f"print(','.join(m for m in {watched!r} if m in sys.modules))\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


def test_core_imports_neither_fairseq_nor_transformers():
    assert imported_after(CORE, ["fairseq", "transformers"]) == ""


def test_evaluation_and_data_import_neither_torch_nor_fairseq():
    assert imported_after(PLAIN_PYTHON, ["torch", "fairseq"]) == ""


def test_the_floor_loads_no_room():
    """deep_pyramidion.plumbing, which every room imports, loads no other module of the package
    (the package's own __init__ aside) and neither torch nor fairseq; tests/unit/
    test_import_boundaries.py checks its source."""
    code = ("import importlib, sys\n"
            f"for name in {FLOOR!r}:\n    importlib.import_module(name)\n"
            "print(','.join(sorted(m for m in sys.modules if m in ('torch', 'fairseq') or\n"
            "    m.startswith('deep_pyramidion.') and not m.startswith('deep_pyramidion.plumbing'))))\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == ""


@pytest.mark.parametrize("first", ["fairseq", "deep_pyramidion.topk", "deep_pyramidion.eval"])
def test_fairseq_user_dir_import_registers_the_plugin(first):
    """fairseq imports the package by path for --user-dir; the model, its architectures and the
    criterion are then registered, also when part of the package was imported before fairseq
    (fairseq then skips the package: the finder of deep_pyramidion/__init__.py loads the adapter
    when fairseq's own import ends)."""
    code = (f"import importlib, os\nimportlib.import_module({first!r})\n"
            "import fairseq\nfrom argparse import Namespace\nfrom fairseq import utils\n"
            "import deep_pyramidion.config as c\n"
            "utils.import_user_module(Namespace(user_dir=os.path.dirname(c.__file__)))\n"
            "from fairseq.models import ARCH_MODEL_REGISTRY\n"
            "from fairseq.criterions import CRITERION_REGISTRY\n"
            "print({'pyramidion_base', 'pyramidion_deep', 'pyramidion_tiny'} <= set(ARCH_MODEL_REGISTRY),\n"
            "      'label_smoothed_cross_entropy_with_reconstruction' in CRITERION_REGISTRY)\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["True", "True"]


def test_hugging_face_adapter_imports_neither_fairseq_nor_the_fairseq_adapter():
    """deep_pyramidion.hf stands beside the fairseq adapter on the core (docs/architecture.md):
    an installed package loads an export with transformers alone."""
    modules = ["deep_pyramidion.hf", "deep_pyramidion.hf.export"]
    assert imported_after(modules, ["fairseq", "deep_pyramidion.fairseq_plugin"]) == ""
    assert imported_after(modules, ["transformers", "deep_pyramidion.modules"]) == \
        "transformers,deep_pyramidion.modules"
