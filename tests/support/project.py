"""The package's test project (``tests/fixtures/project``): a small synthetic regression, its contract and data.

The package's tests train, register and serve this project, not the example in the repository's root, so they
pass whatever model a user puts there. The example's own tests are ``tests/test_examples.py``.
"""

from __future__ import annotations

import functools
import importlib.util
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pandas as pd
import yaml

from amlops.core import contract
from tests.support.checkout import FIXTURE

#: The test project's contract, and the column names that tests refer to.
CONTRACT = contract.in_root(FIXTURE)
FEATURES = CONTRACT.feature_names
TARGET = CONTRACT.target.name
#: The test project's data snapshot.
SNAPSHOT = FIXTURE / CONTRACT.data
#: The coefficients of :func:`make_table`'s target, per feature, before noise.
COEFFICIENTS = {"length": 3.0, "grade": 40.0, "width": 5.0, "height": 2.0, "weight": 0.2}


def make_table(rows: int = 400, *, seed: int = 7, coefficients: dict[str, float] | None = None) -> pd.DataFrame:
    """The test project's data: five features and a price that depends on them linearly, plus noise.

    ``make_table()`` is the committed snapshot, byte for byte once written with ``write_csv_with_sha256``.

    Args:
        rows: How many rows.
        seed: The seed of ``numpy.random.default_rng``.
        coefficients: Another relationship between the features and the price (concept drift), keeping the
            features of the same seed as they are.

    Returns:
        The table, the target last.
    """
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "length": rng.uniform(10, 90, rows).round(1),
            "grade": rng.integers(1, 4, rows).astype(float),
            "width": rng.normal(30, 6, rows).clip(5, 55).round(1),
            "height": rng.normal(20, 4, rows).clip(2, 38).round(1),
            "weight": rng.normal(500, 150, rows).clip(50, 1100).round(0),
        }
    )
    noise = rng.normal(0, 45, rows)
    weights = coefficients or COEFFICIENTS
    price = 200 + sum(weights[name] * frame[name] for name in FEATURES) + noise
    return frame.assign(price=price.clip(0, 2000).round(1))


def relabelled(frame: pd.DataFrame, *, seed: int = 2026) -> pd.DataFrame:
    """Newer labelled data whose target relationship changed (concept drift), and nothing else.

    The same rows, and the same target values reassigned in the order of another relationship: length now
    lowers the price. Every column's distribution is exactly the snapshot's, so the schema and the drift check
    pass; only an efficacy check on labelled data sees the change.

    Args:
        frame: The test project's table.
        seed: The seed of the noise in the new relationship.

    Returns:
        The relabelled table.
    """
    rng = np.random.default_rng(seed)
    weights = COEFFICIENTS | {"length": -COEFFICIENTS["length"]}
    score = sum(weights[name] * frame[name] for name in FEATURES) + rng.normal(0, 45, len(frame))
    ranks = score.rank(method="first").astype(int).to_numpy() - 1
    return frame.assign(**{TARGET: np.sort(frame[TARGET].to_numpy())[ranks]})


def edit_contract(root: Path, **changes) -> Path:
    """Replace top-level fields of the test project's contract in a project copy (``None`` removes one).

    Args:
        root: The project root whose ``contract.yml`` is rewritten.
        **changes: Field names and their new values.

    Returns:
        The contract file.
    """
    content = yaml.safe_load((FIXTURE / contract.CONTRACT_FILE).read_text())
    for key, value in changes.items():
        if value is None:
            content.pop(key)
        else:
            content[key] = value
    path = Path(root) / contract.CONTRACT_FILE
    path.write_text(yaml.safe_dump(content, sort_keys=False))
    return path


@functools.cache
def project_build() -> Callable[..., Any]:
    """The test project's ``build(**params)`` from its ``train.py`` (imported once)."""
    return load_script(FIXTURE / "train.py").build


def load_script(path: Path) -> ModuleType:
    """Import a script (a project's ``train.py``, ``data/make_dataset.py``), which is a file, not a package module.

    Args:
        path: The script.
    """
    path = Path(path)
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
