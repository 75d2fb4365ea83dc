"""The lifecycle on another supported Python (3.10 to 3.13), in a fresh copy: ``make check-python PYTHON=python3.10``.

A second environment takes a minute or more to install, so these tests run only when ``PYTHON_UNDER_TEST`` names
an interpreter, as ``make check-python`` does; the CI builds run it for 3.10 and 3.12 beside ``make test``. The copy
installs its own environment from the lock with that interpreter, runs ``make run`` and notebook 00, and then this
checkout's Python serves the model it trained: the same library versions on both, so the same predictions.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from tests.support.checkout import NOT_IN_A_CLONE, REPO, clean_env

OTHER = os.environ.get("PYTHON_UNDER_TEST", "")

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(not OTHER, reason="make check-python PYTHON=... runs these (PYTHON_UNDER_TEST)"),
]

#: Predictions of the copy's production model for the first rows of its snapshot, printed as JSON.
PREDICT = """
import json, sys
from amlops.core.settings import ProjectSettings
from amlops.ml import data
from amlops.registry.mlflow import Registry
from amlops.scoring.model import load_model

settings = ProjectSettings()
registry = Registry(settings)
folder = registry.download(registry.production().version, sys.argv[1])
rows = data.load_csv(settings.data_snapshot).loc[:49, list(settings.contract.feature_names)].to_numpy(dtype=float)
predictions = load_model(folder).estimator.predict(rows)
print(json.dumps({"python": sys.version.split()[0], "predictions": predictions.tolist()}))
"""


def _run(command: list[str], cwd: Path, timeout: float) -> subprocess.CompletedProcess:
    done = subprocess.run(command, cwd=cwd, env=clean_env(), capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"{' '.join(command)}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done


@pytest.fixture(scope="module")
def copy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the repository with its own environment, installed by ``make install`` with the other Python."""
    dest = tmp_path_factory.mktemp("python") / "repo"
    shutil.copytree(REPO, dest, ignore=shutil.ignore_patterns(*NOT_IN_A_CLONE))
    _run(["make", "install", f"PYTHON={OTHER}"], dest, timeout=900)
    return dest


@pytest.mark.timeout(1200)
def test_make_run_passes(copy: Path):
    version = _run([".venv/bin/python", "-c", "import sys; print(sys.version_info[:2])"], copy, 30).stdout.strip()
    expected = _run([OTHER, "-c", "import sys; print(sys.version_info[:2])"], copy, 30).stdout.strip()
    assert version == expected  # the copy's environment is the other Python's
    out = _run(["make", "run"], copy, timeout=600).stdout
    assert "production version 1" in out
    assert "smoke test   passed" in out


@pytest.mark.timeout(600)
def test_notebook_00_runs_on_the_copys_kernel(copy: Path, tmp_path: Path):
    notebook = copy / "notebooks" / "00-develop-model.ipynb"
    command = [".venv/bin/python", "-m", "papermill", str(notebook), str(tmp_path / "00.ipynb"), "-k", "python3"]
    _run([*command, "--cwd", str(copy / "notebooks"), "--no-progress-bar"], copy, timeout=540)


@pytest.mark.timeout(300)
def test_a_model_trained_on_the_other_python_predicts_the_same_here(copy: Path, tmp_path: Path):
    if not (copy / ".mlops").exists():
        _run(["make", "pipeline"], copy, timeout=300)
    there = json.loads(_run([".venv/bin/python", "-c", PREDICT, str(tmp_path / "there")], copy, 120).stdout)
    env = os.environ | {"AMLOPS_ROOT": str(copy)}
    done = subprocess.run(
        [str(REPO / ".venv" / "bin" / "python"), "-c", PREDICT, str(tmp_path / "here")],
        cwd=copy,
        env={k: v for k, v in env.items() if not k.startswith("PYTEST")},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    here = json.loads(done.stdout)
    np.testing.assert_array_equal(np.array(here["predictions"]), np.array(there["predictions"]))
