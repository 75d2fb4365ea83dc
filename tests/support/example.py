"""The example this checkout ships (``contract.yml``, ``data/``): its contract, column names and scripts."""

from __future__ import annotations

import importlib.util
from types import ModuleType

from amlops.core import contract
from tests.support.checkout import REPO

#: The example's contract, and the column names that tests using the example's data refer to.
CONTRACT = contract.in_root(REPO)
FEATURES = CONTRACT.feature_names
TARGET = CONTRACT.target.name


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
