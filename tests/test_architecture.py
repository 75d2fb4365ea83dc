"""The package's structure rules (docs/architecture.md), checked on the code as it is.

The layer contracts themselves are import-linter's (pyproject.toml); these tests add what it cannot see.
"""

import ast
import graphlib
import subprocess
import sys
from pathlib import Path

import grimp
import pytest

from amlops.cli.main import handler
from amlops.cli.parser import parser
from amlops.core.settings import PACKAGE_DIR
from amlops.serving.stage import scoring_code
from bench.startup import HEAVY  # the benchmark reports the same modules

REPO = PACKAGE_DIR.parent
MODULES = sorted(PACKAGE_DIR.rglob("*.py"))
MAX_LINES = 500

#: Not heavy, but ~0.2 s together: ``--help`` does without them too (``docs/performance.md``).
SETTINGS = ("pydantic", "pydantic_settings", "yaml", "amlops.core.settings")


def _is_first_party(node: ast.AST) -> bool:
    if isinstance(node, ast.ImportFrom):
        return (node.module or "").split(".")[0] == "amlops" and not node.level
    return isinstance(node, ast.Import) and any(alias.name.split(".")[0] == "amlops" for alias in node.names)


def _first_party_imports(tree: ast.Module):
    """Every ``import amlops...`` / ``from amlops... import`` statement, with whether it is nested.

    Nested means anywhere but the module's top level: in a function, a class, a ``try`` or an ``if`` (also
    ``if __name__ == "__main__"``). A nested import hides a dependency from the reader and from Python at import time.
    """
    top = set(map(id, tree.body))
    for node in ast.walk(tree):
        if _is_first_party(node):
            yield node, id(node) not in top


def test_the_layer_contracts_hold():
    """import-linter's contracts in pyproject.toml: downward only, no cycles, scoring and Azure SDK rules."""
    done = subprocess.run(
        [str(Path(sys.executable).with_name("lint-imports")), "--no-cache"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:]


def test_no_module_imports_itself_through_others():
    """Module by module, counting every import statement (also under TYPE_CHECKING): the graph has no cycle.

    The layer contracts forbid cycles between layers; this also covers two modules of one layer.
    """
    graph = grimp.build_graph("amlops", cache_dir=None)
    imports = {module: graph.find_modules_directly_imported_by(module) for module in graph.modules}
    try:
        graphlib.TopologicalSorter(imports).prepare()
    except graphlib.CycleError as error:
        pytest.fail(f"import cycle: {' -> '.join(error.args[1])}")


@pytest.mark.parametrize("module", MODULES, ids=lambda p: str(p.relative_to(REPO)))
def test_first_party_imports_are_at_the_top_of_each_module(module: Path):
    """Only heavy third-party SDKs are imported inside functions (deferred); the package's own modules never are."""
    found = [f"line {node.lineno}" for node, inside in _first_party_imports(ast.parse(module.read_text())) if inside]
    assert not found, f"{module.relative_to(REPO)}: first-party imports below the top level at {', '.join(found)}"


def test_no_private_name_is_used_across_modules():
    """A name starting with ``_`` belongs to its module: another module neither imports it nor reaches for it."""
    offences = []
    for module in MODULES:
        tree = ast.parse(module.read_text())
        aliases = set()
        for node, _ in _first_party_imports(tree):
            for alias in node.names:
                name = alias.name.rpartition(".")[2]
                if isinstance(node, ast.ImportFrom) and name.startswith("_"):
                    offences.append(f"{module.relative_to(REPO)}:{node.lineno} imports {name}")
                aliases.add(alias.asname or name)
        for node in ast.walk(tree):
            reaches = isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
            if reaches and node.value.id in aliases and node.attr.startswith("_") and not node.attr.startswith("__"):
                offences.append(f"{module.relative_to(REPO)}:{node.lineno} uses {node.value.id}.{node.attr}")
    assert not offences, "\n".join(offences)


def test_no_module_is_over_500_lines():
    long = {str(p.relative_to(REPO)): n for p in MODULES if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert not long, f"split these modules: {long}"


def test_help_imports_no_heavy_library():
    """``python -m amlops --help`` parses arguments only: each command imports what it uses when it runs."""
    script = (
        "import runpy, sys\n"
        "sys.argv = ['amlops', '--help']\n"
        "try:\n    runpy.run_module('amlops', run_name='__main__')\nexcept SystemExit:\n    pass\n"
        f"print(sorted(m for m in {HEAVY + SETTINGS!r} if m in sys.modules))\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=REPO, check=True)
    assert done.stdout.strip().splitlines()[-1] == "[]"


def test_every_command_names_a_handler_that_exists():
    """The parser names handlers as strings (loaded lazily); each must resolve to a function."""

    def walk(action_parser):
        for action in action_parser._actions:
            for sub in (getattr(action, "choices", None) or {}).values() if hasattr(action, "add_parser") else ():
                if sub.get_default("handler"):
                    yield sub.get_default("handler")
                yield from walk(sub)

    names = sorted(set(walk(parser())))
    assert len(names) > 30
    for name in names:
        assert callable(handler(name)), name


def test_only_the_scoring_code_is_staged_into_an_endpoint():
    """``score.py`` needs the scoring layer and a few core modules: nothing of the lifecycle, Azure or the CLI."""
    staged = [p.relative_to(PACKAGE_DIR) for p in scoring_code(REPO / "score.py")]
    assert Path("scoring/service.py") in staged
    assert {p.parts[0] for p in staged} <= {"__init__.py", "scoring", "core"}
    # The scoring layer, the settings and the contract they read: ~1,300 lines then, ~1,500 with the contract,
    # ~1,800 with the client limits (connections.py).
    assert sum(len((PACKAGE_DIR / p).read_text().splitlines()) for p in staged) < 2000


def test_the_staged_scoring_code_imports_on_its_own(tmp_path: Path):
    """Every module ``score.py`` reaches, ``from amlops.core import a, b`` included, is in what an endpoint gets."""
    import shutil
    import subprocess
    import sys

    for path in scoring_code(REPO / "score.py"):
        dest = tmp_path / "amlops" / path.relative_to(PACKAGE_DIR)
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, dest)
    shutil.copy2(REPO / "score.py", tmp_path / "score.py")
    check = "import amlops, score; assert amlops.__file__.startswith(sys.argv[1]), amlops.__file__"
    done = subprocess.run(
        [sys.executable, "-c", f"import sys; {check}", str(tmp_path)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
