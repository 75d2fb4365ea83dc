"""This checkout and copies of it: where it is, what a fresh clone lacks, how to run commands in a copy."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from amlops.core import files

#: The root of this checkout.
REPO = Path(__file__).resolve().parents[2]
#: The example projects under examples/, each set up as docs/your-model.md says.
EXAMPLES = sorted(path.parent for path in (REPO / "examples").glob("*/contract.yml"))
#: The package's test project: what :func:`copy_project` puts in place of the root's model, contract and data.
FIXTURE = REPO / "tests" / "fixtures" / "project"

#: Local state and environments that a fresh clone does not have.
NOT_IN_A_CLONE = (
    ".git",
    ".venv",
    ".mlops",
    "build",
    "mlruns",
    ".pytest_cache",
    ".ruff_cache",
    "__pycache__",
    ".lock-venv",
    ".tools",
    ".import_linter_cache",
    "*.egg-info",
)


def copy_project(dest: Path) -> Path:
    """A project with this checkout's configuration and entry scripts, and the test project's model and data.

    The configuration (``sklearn.runconfig``, ``deploymentConfig*.yml``, ``score.py``...) is the root's;
    ``contract.yml``, ``train.py`` and ``data/`` are :data:`FIXTURE`'s, whatever model the root holds.

    Args:
        dest: The folder to create.

    Returns:
        The new project root.
    """
    root = files.copy_project(REPO, dest)
    shutil.rmtree(root / "data")
    return files.copy_project(FIXTURE, root)


def clone_checkout(dest: Path, example: Path | None = None) -> Path:
    """A copy of this checkout as a fresh clone has it, sharing this checkout's installed ``.venv``.

    Args:
        dest: The folder to create.
        example: An example project (``examples/<name>``) to set up in the copy as docs/your-model.md says: its
            ``contract.yml``, ``train.py`` and ``data/`` replace the root's model, contract and data.

    Returns:
        The copy's root.
    """
    shutil.copytree(REPO, dest, ignore=shutil.ignore_patterns(*NOT_IN_A_CLONE))
    (dest / ".venv").symlink_to(REPO / ".venv")
    if example is not None:
        shutil.rmtree(dest / "data")  # as the example's README says
        shutil.copytree(example, dest, dirs_exist_ok=True, ignore=shutil.ignore_patterns("README.md", "__pycache__"))
    return dest


def on_a_free_port(root: Path, name: str = "deploymentConfig.local.yml") -> Path:
    """``root``'s local deployment config with ``port: 0`` (any free port), written to ``name`` in ``root``.

    Tests never take the fixed port: another suite on the machine, or a developer's ``make serve``, may hold it.
    """
    text = (root / "deploymentConfig.local.yml").read_text()
    assert "port: 31311" in text
    (root / name).write_text(text.replace("port: 31311", "port: 0"))
    return root / name


def clean_env() -> dict[str, str]:
    """The environment for a command run in a copy of the repository.

    Returns:
        This process's environment without project settings, a tracking URI or pytest's variables, and with
        telemetry off.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AMLOPS_", "MLFLOW_TRACKING", "PYTEST"))}
    return env | {"MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "true"}
