"""The example this checkout ships (``contract.yml``, ``data/``): its contract, column names and scripts."""

from __future__ import annotations

import functools
import importlib.util
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import yaml

from amlops.core import contract
from tests.support.checkout import REPO

#: The example's contract, and the column names that tests using the example's data refer to.
CONTRACT = contract.in_root(REPO)
FEATURES = CONTRACT.feature_names
TARGET = CONTRACT.target.name


def edit_contract(root: Path, **changes) -> Path:
    """Replace top-level fields of the example's contract in a project copy (``None`` removes one).

    Args:
        root: The project root whose ``contract.yml`` is rewritten.
        **changes: Field names and their new values.

    Returns:
        The contract file.
    """
    content = yaml.safe_load((REPO / contract.CONTRACT_FILE).read_text())
    for key, value in changes.items():
        if value is None:
            content.pop(key)
        else:
            content[key] = value
    path = Path(root) / contract.CONTRACT_FILE
    path.write_text(yaml.safe_dump(content, sort_keys=False))
    return path


@functools.cache
def example_build() -> Callable[..., Any]:
    """The example's ``build(**params)`` from its ``train.py`` (imported once)."""
    return example_script("train.py").build


def example_script(relative: str) -> ModuleType:
    """Import one of the example's scripts (``data/make_dataset.py``), which are files, not package modules.

    Args:
        relative: The script's path relative to the checkout.
    """
    path = REPO / relative
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
