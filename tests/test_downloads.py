"""Downloading a registered model, whichever registry holds it and however it was registered.

Azure ML's registries hand out a download location that is not always the version's ``source``: a version
registered through the models API carries a datastore ``source`` that no MLflow artifact repository parses, and
``models.download`` has been seen to write nothing for versions registered from a job's output or through MLflow.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from amlops.azure import operations
from amlops.core.settings import ProjectSettings
from amlops.scoring.model import load_model
from amlops.serving.smoke import known_rows
from tests.support.project import CONTRACT, SNAPSHOT

#: A ``source`` as a version registered through Azure ML's models API carries it: no MLflow repository reads it.
DATASTORE_SOURCE = "datastore://workspaceblobstore/paths/LocalUpload/0f3e/model"


def _predicts(folder: Path) -> bool:
    return load_model(folder).estimator.predict(known_rows(SNAPSHOT, contract=CONTRACT).to_numpy()).shape == (5,)


def _move_source_aside(registry: Any, version: str) -> None:
    """Give a version a datastore ``source`` while the registry keeps its real location, as Azure ML's does."""
    database = Path(ProjectSettings().resolved_tracking_uri.removeprefix("sqlite:///"))
    with sqlite3.connect(database) as db:
        (source,) = db.execute(
            "SELECT source FROM model_versions WHERE name = ? AND version = ?", (registry.name, int(version))
        ).fetchone()
        db.execute(
            "UPDATE model_versions SET source = ?, storage_location = ? WHERE name = ? AND version = ?",
            (DATASTORE_SOURCE, source, registry.name, int(version)),
        )


def test_a_version_downloads_through_the_registry_not_its_source(two_versions, tmp_path: Path):
    _move_source_aside(two_versions, "2")
    assert two_versions.get("2").source == DATASTORE_SOURCE
    folder = two_versions.download("2", tmp_path / "m")
    assert (folder / "MLmodel").is_file()
    assert _predicts(folder)


class SilentModels:
    """``MLClient.models`` whose ``download`` writes nothing, as it has for versions registered from a job."""

    def __init__(self, folders: dict[str, Path] | None = None):
        self.folders = folders or {}
        self.calls: list[tuple] = []

    def download(self, name: str, version: str, download_path: str) -> None:
        self.calls.append(("download", name, version))
        if version in self.folders:
            import shutil

            shutil.copytree(self.folders[version], Path(download_path) / name / "model")


def _workspace(tracking_uri: str, models: SilentModels) -> Any:
    """An ``MLClient`` stand-in whose workspace MLflow is ``tracking_uri`` (the test's real SQLite registry)."""
    workspace = SimpleNamespace(mlflow_tracking_uri=tracking_uri)
    return SimpleNamespace(models=models, workspace_name="ws", workspaces=SimpleNamespace(get=lambda name: workspace))


def test_a_model_the_models_api_downloads_empty_comes_from_the_workspace_mlflow(two_versions, tmp_path: Path):
    models = SilentModels()
    client = _workspace(ProjectSettings().resolved_tracking_uri, models)
    folder = operations.download_model(client, two_versions.name, "2", tmp_path / "dl")
    assert models.calls == [("download", two_versions.name, "2")]
    assert (folder / "MLmodel").is_file()
    assert _predicts(folder)


def test_the_models_api_is_used_when_it_delivers(model_folder: Path, tmp_path: Path):
    client = _workspace("sqlite:///never-opened.db", SilentModels({"3": model_folder}))
    folder = operations.download_model(client, CONTRACT.name, "3", tmp_path / "dl")
    assert folder == tmp_path / "dl" / "models-api" / CONTRACT.name / "model"
    assert not (Path.cwd() / "never-opened.db").exists()


def test_a_model_neither_route_delivers_is_refused_by_name(project: Path, tmp_path: Path):
    from amlops.registry.mlflow import Registry

    registry = Registry()
    client = _workspace(ProjectSettings().resolved_tracking_uri, SilentModels())
    with pytest.raises(operations.AzureOperationError, match=rf"model {registry.name}:7 downloaded, but neither"):
        operations.download_model(client, registry.name, "7", tmp_path / "dl")
