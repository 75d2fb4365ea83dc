"""Shared fixtures: a throw-away copy of the test project, and real tiny models trained on its data.

Fixtures and hooks only: code the test modules share lives in ``tests/support``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import pytest

from tests.support.checkout import REPO, copy_project, on_a_free_port
from tests.support.project import CONTRACT, SNAPSHOT, project_build

if TYPE_CHECKING:
    from amlops.registry.mlflow import Registry

# Before anything imports MLflow or azure-ai-ml: no telemetry, no interactive Azure login, no network.
os.environ["MLFLOW_DISABLE_TELEMETRY"] = "true"
os.environ["DO_NOT_TRACK"] = "true"
os.environ.pop("MLFLOW_TRACKING_URI", None)
for _name in [n for n in os.environ if n.startswith("AMLOPS_")]:
    os.environ.pop(_name)


@pytest.fixture(autouse=True)
def _settings_end_with_the_test():
    """``AMLOPS_*`` variables a command sets for its process (``--workspace-config`` does) end with the test."""
    before = {name: value for name, value in os.environ.items() if name.startswith("AMLOPS_")}
    yield
    for name in [name for name in os.environ if name.startswith("AMLOPS_") and name not in before]:
        os.environ.pop(name)
    os.environ.update(before)


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh copy of the test project with its own empty MLflow registry; ``ProjectSettings()`` points at it."""
    root = copy_project(tmp_path / "project")
    monkeypatch.setenv("AMLOPS_ROOT", str(root))
    return root


@pytest.fixture(scope="session")
def table() -> pd.DataFrame:
    """The test project's data snapshot."""
    return pd.read_csv(SNAPSHOT)


@pytest.fixture(scope="session")
def model_folder(tmp_path_factory: pytest.TempPathFactory, table: pd.DataFrame) -> Path:
    """A real MLflow model folder: the test project's model fitted on its snapshot with the contract's defaults."""
    from amlops.ml import model

    folder = tmp_path_factory.mktemp("model") / "model"
    fitted = model.fit(project_build(), CONTRACT.defaults(), table, CONTRACT)
    return model.save_mlflow_model(fitted, table, folder, CONTRACT)


@pytest.fixture(scope="session")
def expected(model_folder: Path, table: pd.DataFrame) -> tuple[list[list[float]], np.ndarray]:
    """The snapshot's first 5 feature rows and ``model_folder``'s in-process predictions for them."""
    from amlops.scoring.model import load_model
    from tests.support.project import FEATURES

    rows = table.loc[:4, list(FEATURES)].to_numpy(dtype=np.float64)
    return rows.tolist(), load_model(model_folder).estimator.predict(rows)


@pytest.fixture(scope="session")
def azure_models(tmp_path_factory: pytest.TempPathFactory, table: pd.DataFrame) -> dict[str, Path]:
    """Registered versions "1" and "2" (different alphas: different predictions), and the "wrong" model a broken
    image might load, as Azure ML's fakes serve them."""
    from amlops.ml import model

    root = tmp_path_factory.mktemp("azure-models")
    return {
        version: model.save_mlflow_model(
            model.fit(project_build(), {"alpha": alpha}, table, CONTRACT), table, root / version / "model", CONTRACT
        )
        for version, alpha in (("1", 1.0), ("2", 0.3), ("wrong", 40.0))
    }


@pytest.fixture(scope="session")
def staged(tmp_path_factory: pytest.TempPathFactory, model_folder: Path):
    """``model_folder`` staged as the test project's model, version 7, as Azure ML lays it out."""
    from amlops.core.config import load_inference_config
    from amlops.serving.stage import stage

    return stage(
        model_folder,
        CONTRACT.name,
        "7",
        load_inference_config(REPO / "inferenceConfig.yml"),
        REPO,
        tmp_path_factory.mktemp("deploy") / "local",
    )


# --- local endpoints and registered versions (governance and release tests) ----------------------------


@pytest.fixture
def free_port_config(project: Path) -> Path:
    """The local deployment config on any free port (tests never take the fixed one)."""
    return on_a_free_port(project, "deploymentConfig.free.yml")


@pytest.fixture
def no_servers_left(project: Path):
    """Stop every local endpoint a test left running, and check their processes are gone."""
    yield
    from amlops.core.settings import ProjectSettings
    from amlops.lifecycle import local_deploy

    settings = ProjectSettings()
    left = local_deploy.local_endpoints(settings)
    for state in left:
        local_deploy.undeploy_local(state.name, settings=settings)
    for state in left:
        with pytest.raises(ProcessLookupError):
            os.killpg(state.pid, 0)  # stopped and reaped, not a zombie


@pytest.fixture
def two_versions(project: Path, model_folder: Path) -> Registry:
    """Versions 1 (production) and 2 of the same real model, registered directly (no pipeline run)."""
    from amlops.registry.mlflow import Registry

    registry = Registry()
    tags = {"metric.rmse": "53.78", "metric.mae": "42.81", "metric.r2": "0.4541", "decision": "register"}
    for _ in range(2):
        registry.register_folder(model_folder, tags)
    registry.promote("1")
    return registry


def pytest_configure(config) -> None:
    """A SIGTERM (a cancelled CI job) interrupts like Ctrl-C: fixtures tear down and stop the servers they started."""
    from amlops.core.processes import unwind_on_sigterm

    unwind_on_sigterm(KeyboardInterrupt)


def pytest_terminal_summary(terminalreporter) -> None:
    """Print the endpoint fuzz campaign's counts (requests sent, 4xx, 5xx) when it ran."""
    import sys

    fuzz = sys.modules.get("tests.test_fuzz")
    line = fuzz.campaign_summary() if fuzz else None
    if line:
        terminalreporter.write_line(line)
