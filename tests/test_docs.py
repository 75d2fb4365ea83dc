"""The README stays short and its two commands stay on top; links and code references in the docs resolve."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
README = REPO / "README.md"
DOCS = sorted((REPO / "docs").rglob("*.md"))
PAGES = [README, REPO / "pipelines" / "README.md", *DOCS]
MAX_README_LINES = 300

LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
FENCE = re.compile(r"^(```|~~~).*?^\1", re.MULTILINE | re.DOTALL)


def _name(page: Path) -> str:
    return page.relative_to(REPO).as_posix()


def test_readme_is_at_most_300_lines():
    lines = README.read_text(encoding="utf-8").count("\n")
    assert lines <= MAX_README_LINES, f"README.md has {lines} lines; move reference material into docs/"


def test_readme_shows_the_two_commands_near_the_top():
    top = README.read_text(encoding="utf-8").splitlines()[:40]
    assert "make run" in top
    assert "make test" in top


def test_readme_links_every_doc():
    text = README.read_text(encoding="utf-8")
    for page in DOCS:
        assert f"]({_name(page)})" in text, f"README.md's table of contents does not link {_name(page)}"


@pytest.mark.parametrize("page", PAGES, ids=_name)
def test_relative_links_point_to_existing_files(page: Path):
    text = FENCE.sub("", page.read_text(encoding="utf-8"))
    broken = []
    for target in LINK.findall(text):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target) or target.startswith("#"):
            continue  # a URL or an anchor on the same page
        path = (page.parent / target.split("#", 1)[0]).resolve()
        if not path.exists():
            broken.append(target)
    assert not broken, f"{_name(page)} links to files that do not exist: {broken}"


# The CLI runs with the interpreter in .venv: `.venv/bin/python -m amlops ...`, or `python -m amlops ...` after
# `source .venv/bin/activate` (a paragraph that says so may use the short form). YAML blocks are exempt: they run
# in an Azure ML job's environment, where `python` is the environment's own.
BARE_CALL = re.compile(r"(?<!\.venv/bin/)\bpython (-m amlops|-m bench|train\.py)")
YAML_FENCE = re.compile(r"^```ya?ml\n.*?^```", re.MULTILINE | re.DOTALL)


@pytest.mark.parametrize("page", PAGES, ids=_name)
def test_commands_use_the_venv_interpreter(page: Path):
    text = YAML_FENCE.sub("", page.read_text(encoding="utf-8"))
    bare = [
        line.strip()
        for paragraph in re.split(r"\n\s*\n", text)
        if "source .venv/bin/activate" not in paragraph
        for line in paragraph.splitlines()
        if BARE_CALL.search(line)
    ]
    assert not bare, f"{_name(page)}: call the CLI as `.venv/bin/python -m amlops ...`: {bare}"


# A path to one of the package's files, or a dotted name in it, written in backticks: `amlops/core/settings.py`,
# `amlops.ml.data`, `amlops.serving.deploy.stage_version`. Module moves must not leave the docs pointing nowhere.
CODE_PATH = re.compile(r"`(amlops/[\w/]+(?:\.py)?)`")
DOTTED = re.compile(r"(?<![\w.])(amlops(?:\.\w+)+)")


def _resolves(dotted: str) -> bool:
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            found = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        for attribute in parts[cut:]:
            if not hasattr(found, attribute):
                return False
            found = getattr(found, attribute)
        return True
    return False


@pytest.mark.parametrize("page", PAGES, ids=_name)
def test_code_references_name_modules_that_exist(page: Path):
    text = page.read_text(encoding="utf-8")
    missing = [path for path in CODE_PATH.findall(text) if not (REPO / path).exists()]
    missing += [
        name
        for code in re.findall(r"`([^`\n]+)`", text)
        for name in DOTTED.findall(code)
        if not _resolves(name.rstrip("."))
    ]
    assert not missing, f"{_name(page)} names modules or files that do not exist: {sorted(set(missing))}"
