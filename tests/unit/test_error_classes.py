"""Every error class of the package derives from deep_pyramidion.errors.PyramidionError, so that
the command lines' one-line handling (data/cli_common.py: run_cli, the one_line_errors patch of
fairseq's commands) catches it; BpeError and HighlightError once did not and ended in a
traceback. Checked on the source (no module is imported, so the fairseq adapter counts too)."""
import ast
from pathlib import Path

import deep_pyramidion

PACKAGE = Path(deep_pyramidion.__file__).parent
ROOT = "PyramidionError"


def error_classes():
    """{class name: (file, [base names])} of every class named *Error in the package."""
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ClassDef) and node.name.endswith("Error"):
                bases = [b.id if isinstance(b, ast.Name) else b.attr for b in node.bases
                         if isinstance(b, (ast.Name, ast.Attribute))]
                found[node.name] = (str(path.relative_to(PACKAGE)), bases)
    return found


def reaches_root(name, classes, seen=()):
    if name == ROOT:
        return True
    if name not in classes or name in seen:
        return False
    return any(reaches_root(base, classes, seen + (name,)) for base in classes[name][1])


def test_every_error_class_derives_from_pyramidion_error():
    classes = error_classes()
    assert {"BpeError", "HighlightError", "ConversionError", "DataError"} <= set(classes)
    outside = {name: where for name, (where, _) in classes.items()
               if name != ROOT and not reaches_root(name, classes)}
    assert not outside, f"error classes outside PyramidionError: {outside}"


def test_bpe_and_highlight_errors_are_caught_as_expected_failures():
    from deep_pyramidion.analysis.highlight import HighlightError
    from deep_pyramidion.data.cli_common import run_cli
    from deep_pyramidion.data.gpt2_bpe import BpeError
    from deep_pyramidion.errors import PyramidionError

    for kind in (BpeError, HighlightError):
        assert issubclass(kind, PyramidionError)

        def main(argv, kind=kind):
            raise kind("vocab.json: broken")
        assert run_cli(main, []) == 1        # one line and exit 1, not a traceback
