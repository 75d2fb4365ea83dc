"""Rules for the suite itself: test modules share code through ``tests/support`` only, never import each other.

A test module that imports another runs the other's module-level code and couples two files that pytest
collects on their own; ``conftest.py`` is pytest's, for fixtures and hooks.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.support.checkout import REPO

SOURCES = sorted([*(REPO / "tests").rglob("*.py"), *(REPO / "bench").rglob("*.py")])
#: The one package of ``tests`` that other modules may import.
SHARED = "support"


def _module_name(path: Path, root: Path) -> tuple[str, bool]:
    """The dotted name of the module at ``path`` under ``root``, and whether it is a package's ``__init__``."""
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        return ".".join(parts[:-1]), True
    return ".".join(parts), False


def _absolute(node: ast.ImportFrom, module: str, is_package: bool) -> list[str] | None:
    """The parts of the module a ``from ... import`` names, relative imports resolved (``None``: outside the tree)."""
    if not node.level:
        return (node.module or "").split(".")
    package = module.split(".") if is_package else module.split(".")[:-1]
    if node.level - 1 > len(package):
        return None
    base = package[: len(package) - (node.level - 1)]
    return base + (node.module.split(".") if node.module else [])


def _is_forbidden(parts: list[str]) -> bool:
    """Whether a dotted name is in ``tests`` but not in ``tests.support`` (``tests`` itself is allowed)."""
    return len(parts) > 1 and parts[0] == "tests" and parts[1] != SHARED


def forbidden_imports(source: str, module: str, is_package: bool = False) -> list[tuple[int, str]]:
    """The imports of a test module, ``conftest`` or any other non-shared part of ``tests`` in some source.

    Every import statement counts, also inside functions or ``if TYPE_CHECKING``.

    Args:
        source: Python source code.
        module: The dotted name of the module it is (resolves relative imports).
        is_package: Whether the source is a package's ``__init__.py``.

    Returns:
        ``(line, imported module)`` for each forbidden import, in source order.
    """
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names if _is_forbidden(alias.name.split("."))]
        elif isinstance(node, ast.ImportFrom) and (target := _absolute(node, module, is_package)) is not None:
            if _is_forbidden(target):
                found.append((node.lineno, ".".join(target)))
            else:  # `from tests import test_scoring`: the names may be modules
                found += [
                    (node.lineno, ".".join([*target, alias.name]))
                    for alias in node.names
                    if _is_forbidden([*target, alias.name])
                ]
    return sorted(found)


def offences(path: Path, root: Path = REPO) -> list[str]:
    """``file:line imports module`` for each forbidden import in the file at ``path``."""
    module, is_package = _module_name(path, root)
    name = path.relative_to(root).as_posix()
    found = forbidden_imports(path.read_text(), module, is_package)
    return [f"{name}:{line} imports {imported}" for line, imported in found]


def test_sources_cover_the_tests_and_the_benchmark():
    names = {path.relative_to(REPO).as_posix() for path in SOURCES}
    assert {"tests/conftest.py", "tests/support/__init__.py", "tests/test_scoring.py", "bench/run.py"} <= names


def test_test_modules_share_code_through_tests_support_only():
    found = [line for path in SOURCES for line in offences(path)]
    assert not found, "import shared code from tests.support instead:\n" + "\n".join(found)


@pytest.mark.parametrize(
    ("source", "module", "expected"),
    [
        ("from tests.test_scoring import ROW", "tests.test_endpoint", "tests.test_scoring"),
        ("import tests.conftest", "tests.test_data", "tests.conftest"),
        ("import tests.test_fuzz as fuzz", "tests.test_data", "tests.test_fuzz"),
        ("from tests import test_lifecycle", "tests.test_build", "tests.test_lifecycle"),
        ("from tests.conftest import REPO", "bench.run", "tests.conftest"),
        ("from .test_governance import record", "tests.test_release_flow", "tests.test_governance"),
        ("from . import conftest", "tests.test_data", "tests.conftest"),
        ("from .. import test_scoring", "tests.support.fakes", "tests.test_scoring"),
        ("from ..conftest import REPO", "tests.support.fakes", "tests.conftest"),
    ],
)
def test_the_checker_catches_each_way_of_importing_a_test_module(source: str, module: str, expected: str):
    assert forbidden_imports(source, module) == [(1, expected)]


@pytest.mark.parametrize(
    ("source", "module"),
    [
        ("from tests.support.scoring import ROW", "tests.test_endpoint"),
        ("import tests.support.fakes", "tests.test_governance"),
        ("from tests import support", "tests.test_data"),
        ("from . import support", "tests.test_data"),
        ("from .support.checkout import REPO", "tests.test_data"),
        ("from .scoring import ROW", "tests.support.governance"),
        ("from bench import load", "tests.test_bench"),
        ("from . import load", "bench.run"),
        ("import tests", "tests.test_data"),
    ],
)
def test_the_checker_lets_shared_code_through(source: str, module: str):
    assert forbidden_imports(source, module) == []


def test_a_violation_is_reported_with_its_file_and_line(tmp_path: Path):
    module = tmp_path / "tests" / "test_example.py"
    module.parent.mkdir()
    module.write_text(
        "import json\n\n\ndef helper():\n    from tests.test_scoring import BAD_REQUESTS\n\n    return BAD_REQUESTS\n"
    )
    assert offences(module, root=tmp_path) == ["tests/test_example.py:5 imports tests.test_scoring"]
