"""Local or Azure: the one place that chooses, and what each target does for the lifecycle.

A :class:`Target` runs the lifecycle's steps where it lives: the training pipeline, the registry, the endpoints.
It also hands the lifecycle code (:mod:`amlops.lifecycle`) what only it can answer: for Azure, what an endpoint
serves now and how to redeploy there. The CLI, the notebooks and the CI build resolve a target once
(:func:`resolve`, :func:`open_target`) and call it; nothing else compares target names.
"""

from __future__ import annotations

import functools
import logging
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

from amlops.azure import build_steps, connection, data_assets, rollout
from amlops.azure.registry import AzureRegistry, azure_endpoints, azure_serving
from amlops.azure.translate import Project
from amlops.core.errors import BadInputError
from amlops.core.settings import ProjectSettings
from amlops.lifecycle import inventory, local_deploy, pipeline
from amlops.lifecycle.inventory import Serving
from amlops.lifecycle.retirement import Redeploy
from amlops.registry.base import ModelRegistry, Version
from amlops.registry.mlflow import Registry
from amlops.serving.local import EndpointState, read_state
from amlops.serving.smoke import SmokeResult

log = logging.getLogger(__name__)

TargetName = Literal["local", "azure"]
TARGETS: tuple[TargetName, ...] = ("local", "azure")
#: The Azure stage notebooks deploy to (production releases go through the release pipeline and its approval).
PREPRODUCTION = "preprod"

# An ``azureml://`` tracking URI is usable once the Azure layer can check its credentials (never a login prompt).
connection.install_tracking_check()


@dataclass(frozen=True)
class Endpoint:
    """How an application reaches a deployed model."""

    scoring_uri: str
    key: str | None
    model_name: str
    model_version: str
    swagger_uri: str

    def __repr__(self) -> str:  # never show the key
        return f"Endpoint({self.scoring_uri!r}, model={self.model_name} v{self.model_version})"


class Target(Protocol):
    """Where the pipeline runs and where registry and endpoints live."""

    name: TargetName
    #: What a remote endpoint serves now (Azure), else ``None``.
    serving: Serving | None
    #: How to redeploy on a remote endpoint (Azure), else ``None``.
    redeploy_remote: Redeploy | None

    def registry(self, model_name: str | None = None) -> ModelRegistry:
        """The registry of ``model_name`` (default: the project's model)."""

    def run_pipeline(self, **parameters: Any) -> dict[str, Any]:
        """Run prep → train → evaluate → register (``data``, ``promote``, hyperparameters) and return the decision."""

    def publish_pipeline(self, name: str | None = None, description: str = "", **parameters: Any) -> dict[str, Any]:
        """Publish the pipeline with defaults for ``data`` and the hyperparameters."""

    def run_published_pipeline(self, **parameters: Any) -> dict[str, Any]:
        """Re-run a published pipeline (``name``, ``version``) with some parameters changed."""

    def deploy(self) -> tuple[Endpoint, SmokeResult]:
        """Deploy the production version for applications to call, smoke-tested."""

    def endpoint(self) -> Endpoint:
        """The endpoint :meth:`deploy` serves (URL and key)."""

    def teardown(self) -> None:
        """Stop what :meth:`deploy` started, where that is this target's to do."""

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


def _summary(result: pipeline.PipelineResult) -> dict[str, Any]:
    """A local pipeline run as :meth:`Target.run_pipeline` returns it."""
    return {
        "run_id": result.run_id,
        "outcome": result.registration["outcome"],  # the register step's verdict: it re-checks under a lock
        "reasons": result.registration["reasons"],
        "candidate": result.decision.candidate,
        "production": result.decision.production,
        "registered_version": result.registration["registered_version"],
        "production_version": result.registration["production_version"],
        "folder": str(result.folder),
    }


def _local_endpoint(state: EndpointState) -> Endpoint:
    return Endpoint(state.scoring_uri, None, state.model_name, state.model_version, state.swagger_uri)


@dataclass
class LocalTarget:
    """The MLflow registry in the project, the pipeline in this process tree, the endpoints on this machine."""

    name: TargetName = "local"
    serving: Serving | None = None
    redeploy_remote: Redeploy | None = None

    def registry(self, model_name: str | None = None) -> ModelRegistry:
        """The local MLflow registry."""
        return Registry(_settings(model_name))

    def run_pipeline(self, **parameters: Any) -> dict[str, Any]:
        """The step CLIs in order under one MLflow parent run; a better candidate is promoted unless told not to."""
        hyperparameters = {k: v for k, v in parameters.items() if k not in ("data", "promote")}
        return _summary(
            pipeline.run(parameters.get("data"), promote=parameters.get("promote", True), params=hyperparameters)
        )

    def publish_pipeline(self, name: str | None = None, description: str = "", **parameters: Any) -> dict[str, Any]:
        """A named, versioned definition with a snapshot of the code (``pipeline list`` shows them)."""
        published = pipeline.publish(name, parameters=parameters or None, description=description)
        return asdict(published)

    def run_published_pipeline(self, **parameters: Any) -> dict[str, Any]:
        """The published snapshot, run in a child process with the given parameters."""
        return _summary(pipeline.run_published(**parameters))

    def deploy(self) -> tuple[Endpoint, SmokeResult]:
        """The local endpoint, left running (refuses a retired version; records the deployment on the version)."""
        state, smoke = local_deploy.deploy_local(settings=ProjectSettings())
        return _local_endpoint(state), smoke

    def endpoint(self) -> Endpoint:
        """The running local endpoint."""
        return _local_endpoint(read_state(ProjectSettings().endpoints_dir))

    def teardown(self) -> None:
        """Stop the local endpoint."""
        local_deploy.undeploy_local(settings=ProjectSettings())

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
    """The Azure ML workspace: pipeline jobs on its compute, its registry and its online endpoints."""

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

    def promote_registered(self, outcome: dict[str, Any]) -> dict[str, Any]:
        """Move the production marker to the version a pipeline job registered, as a local run does.

        Through the workspace registry's own ``promote``: a retired version is refused and ``model.promoted`` sent.
        """
        if outcome["registered_version"]:
            AzureRegistry(self.client).promote(outcome["registered_version"])
            outcome["production_version"] = outcome["registered_version"]
        return outcome

    def _outcome(self, outcome: dict[str, Any], promote: bool) -> dict[str, Any]:
        """A pipeline job's outcome in the shape of a local run's, its candidate promoted when asked."""
        shaped = {"run_id": outcome["pipeline_run_id"], "folder": outcome["pipeline_run_id"]} | {
            key: outcome.get(key)
            for key in ("outcome", "reasons", "candidate", "production", "registered_version", "production_version")
        }
        return self.promote_registered(shaped) if promote else shaped

    def run_pipeline(self, **parameters: Any) -> dict[str, Any]:
        """A pipeline job on the workspace's compute, followed until it completes."""
        given = {k: v for k, v in parameters.items() if k not in ("data", "promote")}
        inputs = ProjectSettings().contract.hyperparameters(given, defaults=False) or None
        outcome = build_steps.train(client=self.client, data=parameters.get("data"), inputs=inputs)
        return self._outcome(outcome, parameters.get("promote", True))

    def publish_pipeline(self, name: str | None = None, description: str = "", **parameters: Any) -> dict[str, Any]:
        """The pipeline registered as a pipeline component (v2's published pipeline)."""
        data = parameters.pop("data", None)
        published = build_steps.publish(
            client=self.client, data=data, name=name, description=description, hyperparameters=parameters
        )
        return asdict(published)

    def run_published_pipeline(self, **parameters: Any) -> dict[str, Any]:
        """A pipeline job of the published component (its latest version unless ``version``)."""
        data, promote = parameters.pop("data", None), parameters.pop("promote", True)
        name, version = parameters.pop("name", None), parameters.pop("version", None)
        project = Project.load()
        if name and name != project.pipeline_name:
            raise BadInputError(f"the published pipeline component is {project.pipeline_name!r}, not {name!r}")
        outcome = build_steps.run_published(
            client=self.client,
            project=project,
            data=data,
            version=None if version is None else str(version),
            # Typed as the contract declares them (`--param alpha=0.25` arrives as text), refused before submitting.
            inputs=project.settings.contract.hyperparameters(parameters, defaults=False),
        )
        return self._outcome(outcome, promote)

    def deploy(self) -> tuple[Endpoint, SmokeResult]:
        """A new deployment on the pre-production endpoint; it takes traffic only after its smoke test passes."""
        current = self.registry().production()
        if current is None:
            raise BadInputError("no version is in production yet: run the training pipeline first")
        build_steps.release(PREPRODUCTION, version=current.version, client=self.client)
        return self.endpoint(), build_steps.smoke(PREPRODUCTION, client=self.client)

    def endpoint(self) -> Endpoint:
        """The pre-production endpoint and the deployment taking most of its traffic."""
        details, key = build_steps.endpoint_access(PREPRODUCTION, client=self.client)
        traffic = details["traffic"]
        if not traffic:
            raise BadInputError(f"endpoint {details['name']} serves nothing yet: deploy first")
        live = max(traffic, key=traffic.get)
        name, version = rollout.model_of(self.client.online_deployments.get(name=live, endpoint_name=details["name"]))
        return Endpoint(details["scoring_uri"], key, name, version, details["swagger_uri"])

    def teardown(self) -> None:
        """Nothing: Azure endpoints are left for the release pipeline to manage."""

    def endpoints(self, registry: ModelRegistry) -> list[dict[str, Any]]:
        """Each release stage's endpoint, its deployments and their traffic."""
        return azure_endpoints(self.client, registry)

    def data_file(self, data: str | Path, scratch: Path) -> Path:
        """A data asset (``azureml:NAME:VERSION``) downloaded into ``scratch``, or ``data`` itself."""
        if data_assets.is_reference(data):
            return data_assets.download(self.client, str(data), scratch)
        return Path(data)

    def retrain(self, data: Path) -> dict[str, Any]:
        """A pipeline job whose register step does not promote (the release promotes after approval)."""
        return _retrain_summary(build_steps.train(client=self.client, data=Path(data)))


class UnknownTargetError(BadInputError, ValueError):
    """A target name other than ``local`` or ``azure``."""


def check(target: str | None) -> None:
    """Refuse a target name other than ``local``, ``azure`` (or ``None``: the default)."""
    if target is not None and target not in TARGETS:
        raise UnknownTargetError(f"target must be one of {TARGETS}, got {target!r}")


def resolve(target: str | None, workspace_config: Path | None) -> TargetName:
    """``target``; else ``azure`` when ``workspace_config`` names a workspace; else ``AMLOPS_TARGET``.

    A studio ``config.json`` chooses Azure only when the command names it: one in the project or above it names
    the default workspace but leaves the target local (said once), so ``make run`` never turns into Azure spend.
    """
    settings = ProjectSettings()
    check(target)
    if workspace_config and target == "local":
        raise BadInputError(
            f"--workspace-config {workspace_config} names an Azure ML workspace, and --target is local: "
            "drop one of them"
        )
    chosen = target or ("azure" if workspace_config else settings.target)
    if chosen == "azure" and workspace_config:
        os.environ["AMLOPS_AZURE_WORKSPACE_CONFIG"] = str(workspace_config)
    if chosen == "local" and not target and "target" not in settings.model_fields_set:
        found = connection.find_config_file(settings.root)
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


def migration_registry(
    target: str | None, workspace_config: Path | None, registry_uri: str | None = None
) -> ModelRegistry:
    """Where ``models export`` reads and ``models import`` writes: any MLflow registry, or the workspace's.

    Args:
        target: ``local``, ``azure`` or ``None`` (see :func:`resolve`).
        workspace_config: A studio ``config.json`` (implies Azure).
        registry_uri: An MLflow tracking URI; only for a local target (default: the project's registry).
    """
    if resolve(target, workspace_config) == "azure":
        if registry_uri:
            raise BadInputError(
                "--registry-uri names an MLflow registry; with --target azure the workspace's registry is used "
                "(choose the workspace with --workspace-config)"
            )
        return AzureTarget(connection.connect(workspace_config)).registry()
    settings = ProjectSettings()
    return Registry(settings.model_copy(update={"tracking_uri": registry_uri}) if registry_uri else settings)


def production_version(target: Target) -> Version:
    """The version serving production on ``target``'s registry."""
    current = target.registry().production()
    if current is None:
        raise BadInputError("no version is in production yet: run the training pipeline first")
    return current
