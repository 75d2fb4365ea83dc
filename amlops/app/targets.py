"""Local or Azure: the one place that chooses, and what each target provides to the lifecycle.

A :class:`Target` hands the lifecycle code (:mod:`amlops.lifecycle`) its registry and, for Azure, what only the
workspace can answer: what an endpoint serves now, how to redeploy there, where a data asset's file is. The CLI
and the notebooks resolve a target once (:func:`resolve`, :func:`open_target`) and pass it on.
"""

from __future__ import annotations

import functools
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

from amlops.azure import build_steps, connection, operations
from amlops.azure.registry import AzureRegistry, azure_endpoints, azure_serving
from amlops.core.errors import BadInputError
from amlops.core.settings import ProjectSettings
from amlops.lifecycle import inventory, pipeline
from amlops.lifecycle.inventory import Serving
from amlops.lifecycle.retirement import Redeploy
from amlops.registry.base import ModelRegistry
from amlops.registry.mlflow import Registry

log = logging.getLogger(__name__)

TargetName = Literal["local", "azure"]

# An ``azureml://`` tracking URI is usable once the Azure layer can check its credentials (never a login prompt).
connection.install_tracking_check()


class Target(Protocol):
    """Where registry and endpoints live."""

    name: TargetName
    #: The workspace client (Azure), else ``None``.
    client: Any
    #: What a remote endpoint serves now (Azure), else ``None``.
    serving: Serving | None
    #: How to redeploy on a remote endpoint (Azure), else ``None``.
    redeploy_remote: Redeploy | None

    def registry(self, model_name: str | None = None) -> ModelRegistry:
        """The registry of ``model_name`` (default: the project's model)."""

    def endpoints(self, registry: ModelRegistry) -> list[dict[str, Any]]:
        """Each endpoint with the version it serves."""

    def data_file(self, data: str | Path, scratch: Path) -> Path:
        """A local CSV for ``data`` (a path, or an ``azureml:`` data asset downloaded into ``scratch``)."""

    def retrain(self, data: Path) -> dict[str, Any]:
        """Start the training pipeline on ``data`` (the gate then decides, as in any run)."""


def _settings(model_name: str | None) -> ProjectSettings:
    settings = ProjectSettings()
    return settings.model_copy(update={"model_name": model_name}) if model_name else settings


def _retrain_summary(outcome: dict[str, Any]) -> dict[str, Any]:
    keys = ("pipeline_run_id", "outcome", "reasons", "registered_version", "production_version")
    return {key: outcome.get(key) for key in keys}


@dataclass
class LocalTarget:
    """The MLflow registry in the project and the endpoints on this machine."""

    name: TargetName = "local"
    client: Any = None
    serving: Serving | None = None
    redeploy_remote: Redeploy | None = None

    def registry(self, model_name: str | None = None) -> ModelRegistry:
        """The local MLflow registry."""
        return Registry(_settings(model_name))

    def endpoints(self, registry: ModelRegistry) -> list[dict[str, Any]]:
        """The local endpoints: running ones, and recorded ones no longer running."""
        return inventory.endpoints(registry=registry)

    def data_file(self, data: str | Path, scratch: Path) -> Path:
        """``data`` itself; a data asset is refused (it needs the Azure target)."""
        if str(data).startswith("azureml:"):
            raise BadInputError(f"--data {data}: an Azure ML data asset needs --target azure")
        return Path(data)

    def retrain(self, data: Path) -> dict[str, Any]:
        """The local pipeline: registers and promotes a better candidate."""
        result = pipeline.run(Path(data))
        return _retrain_summary({"pipeline_run_id": result.run_id, **result.registration})


@dataclass
class AzureTarget:
    """The Azure ML workspace's registry and its online endpoints."""

    client: Any
    name: TargetName = "azure"
    serving: Serving | None = field(init=False)
    redeploy_remote: Redeploy | None = field(init=False)

    def __post_init__(self) -> None:
        self.serving = functools.partial(azure_serving, self.client)
        self.redeploy_remote = functools.partial(build_steps.redeploy, self.client)

    def registry(self, model_name: str | None = None) -> ModelRegistry:
        """The workspace's registry (``MLClient.models``)."""
        return AzureRegistry(self.client, settings=_settings(model_name))

    def endpoints(self, registry: ModelRegistry) -> list[dict[str, Any]]:
        """Each release stage's endpoint, its deployments and their traffic."""
        return azure_endpoints(self.client, registry)

    def data_file(self, data: str | Path, scratch: Path) -> Path:
        """A data asset (``azureml:NAME:VERSION``) downloaded into ``scratch``, or ``data`` itself."""
        if str(data).startswith("azureml:"):
            return operations.download_data_asset(self.client, str(data), scratch)
        return Path(data)

    def retrain(self, data: Path) -> dict[str, Any]:
        """A pipeline job whose register step does not promote (the release promotes after approval)."""
        return _retrain_summary(build_steps.train(client=self.client, data=Path(data)))


def resolve(target: str | None, workspace_config: Path | None) -> TargetName:
    """``target``; else ``azure`` when ``workspace_config`` names a workspace; else ``AMLOPS_TARGET``.

    A studio ``config.json`` chooses Azure only when the command names it: one lying in the project root names
    the default workspace but leaves the target local (said once), so ``make run`` never turns into Azure spend.
    """
    settings = ProjectSettings()
    if workspace_config and target == "local":
        raise BadInputError(
            f"--workspace-config {workspace_config} names an Azure ML workspace, and --target is local: "
            "drop one of them"
        )
    chosen = target or ("azure" if workspace_config else settings.target)
    if chosen == "azure" and workspace_config:
        os.environ["AMLOPS_AZURE_WORKSPACE_CONFIG"] = str(workspace_config)
    if chosen == "local" and not target and "target" not in settings.model_fields_set:
        found = next((settings.root / n for n in connection.CONFIG_FILES if (settings.root / n).is_file()), None)
        if found:
            _say_local_once(found)
    return chosen


@functools.cache
def _say_local_once(workspace_config: Path) -> None:
    log.info(
        "%s names an Azure ML workspace; this runs locally. Pass --target azure or --workspace-config PATH (or "
        "set AMLOPS_TARGET=azure) to use the workspace.",
        workspace_config,
    )


def open_target(target: str | None = None, workspace_config: Path | None = None) -> Target:
    """The target the arguments choose (see :func:`resolve`), connected when it is Azure."""
    if resolve(target, workspace_config) == "azure":
        return AzureTarget(connection.connect(workspace_config))
    return LocalTarget()
