"""The floor (deep_pyramidion/plumbing/: errors, line readers, safe writing, the command-line
harness) imports the standard library and itself only, so every room may import it; and the rooms
take that plumbing from the floor, not from one another (docs/architecture.md).

Read from the source with ``ast``: an import inside a function counts as much as one at the top,
and nothing is imported, so the test process's own modules cannot hide or fake a dependency.
tests/integration/test_import_boundaries.py checks the same layers at run time, in fresh
interpreters."""
import ast
import sys
from pathlib import Path

import deep_pyramidion

PACKAGE = Path(deep_pyramidion.__file__).parent
FLOOR = "deep_pyramidion.plumbing"
# where the plumbing lived before the floor: these modules now only re-export the floor's names,
# for the code outside the package that imports them under these paths
OLD_PLUMBING = ("deep_pyramidion.data.io", "deep_pyramidion.data.output",
                "deep_pyramidion.data.cli_common")


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(path: Path):
    """(line, absolute module name) of every import in the file; ``from PACKAGE import name``
    also yields ``PACKAGE.name`` (it may be a module)."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module
            yield node.lineno, target
            for alias in node.names:
                yield node.lineno, f"{target}.{alias.name}"


def files_of(folder: str):
    return sorted((PACKAGE / folder).rglob("*.py"))


def test_the_floor_imports_the_standard_library_and_itself_only():
    floor = files_of("plumbing")
    assert {p.name for p in floor} >= {"__init__.py", "errors.py", "lines.py", "files.py", "cli.py"}
    outside = []
    for path in floor:
        for line, module in imported_modules(path):
            if module == FLOOR or module.startswith(FLOOR + "."):
                continue
            top = module.split(".")[0]
            # ``from . import x`` inside the floor resolves to FLOOR.x above; anything else of the
            # package (its __init__, a room) or outside the standard library is a dependency
            if top == "deep_pyramidion" or top not in sys.stdlib_module_names:
                outside.append(f"{path.relative_to(PACKAGE)}:{line}: {module}")
    assert not outside, "the floor imports more than the standard library:\n" + "\n".join(outside)


def test_the_rooms_take_their_plumbing_from_the_floor():
    """Every module outside data/ (evaluation, analysis, both adapters, the model commands, the
    core) imports errors, readers, writers and the harness from the floor, never through data/."""
    borrowed = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path.relative_to(PACKAGE).parts[0] in ("data", "plumbing"):
            continue
        for line, module in imported_modules(path):
            if module in OLD_PLUMBING:
                borrowed.append(f"{path.relative_to(PACKAGE)}:{line}: {module}")
    assert not borrowed, "plumbing imported from data/ instead of the floor:\n" + "\n".join(borrowed)


def test_every_error_class_is_defined_in_the_floor():
    """One file holds every error class, so a new one is made under PyramidionError in sight of
    the others (tests/unit/test_error_classes.py checks the hierarchy)."""
    defined_elsewhere = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path.relative_to(PACKAGE).as_posix() == "plumbing/errors.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ClassDef) and node.name.endswith("Error"):
                defined_elsewhere.append(f"{path.relative_to(PACKAGE)}:{node.lineno}: {node.name}")
    assert not defined_elsewhere, "error classes outside plumbing/errors.py:\n" + \
        "\n".join(defined_elsewhere)


def test_every_error_class_is_offered_where_its_tracebacks_name_it():
    """A class's __module__ (what a traceback prints) is the module it was defined in before the
    floor held it; that module must still offer it (read from the source: importing the fairseq
    adapter's module would import fairseq)."""
    from deep_pyramidion.plumbing import errors

    for cls, module in errors._PUBLIC_MODULE.items():
        assert cls.__module__ == module
        path = PACKAGE.parent.joinpath(*module.split(".")).with_suffix(".py")
        assert f"{FLOOR}.errors.{cls.__name__}" in {m for _, m in imported_modules(path)}, \
            f"{module} does not import {cls.__name__} from the floor"
    classes = {v for v in vars(errors).values() if isinstance(v, type) and issubclass(v, Exception)}
    assert classes == set(errors._PUBLIC_MODULE)


def test_the_old_import_paths_still_offer_the_floor_s_names():
    from deep_pyramidion import errors as old_errors
    from deep_pyramidion.data import cli_common, io, output
    from deep_pyramidion.eval.errors import MismatchError
    from deep_pyramidion.plumbing import cli, errors, files, lines

    assert io.DataError is errors.DataError and io.read_document_lines is lines.read_document_lines
    assert output.StagedDir is files.StagedDir and output.write_file_atomic is files.write_file_atomic
    assert cli_common.run_cli is cli.run_cli and cli_common.EXIT_MISMATCH == cli.EXIT_MISMATCH == 3
    assert MismatchError is errors.MismatchError
    assert all(getattr(old_errors, name) is getattr(errors, name) for name in old_errors.__all__)


def test_nothing_outside_the_tests_imports_them():
    """The benchmarks, the scripts and the package import nothing from tests/: what a benchmark
    and a test both need lives in the package (deep_pyramidion/testing/), so a benchmark needs the
    package only, and a change to a test helper breaks no benchmark."""
    root = PACKAGE.parent
    files = sorted(PACKAGE.rglob("*.py")) + sorted((root / "benchmarks").rglob("*.py")) + \
        sorted((root / "scripts").glob("*.py"))
    found = [f"{path.relative_to(root)}:{line}: {module}" for path in files
             for line, module in imported_modules(path) if module.split(".")[0] == "tests"]
    assert not found, "imports from tests/ outside the tests:\n" + "\n".join(found)
