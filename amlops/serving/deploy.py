"""Deploy a registered model version to the local endpoint, from the doc's configuration files."""

from __future__ import annotations

from pathlib import Path

from amlops.core import config
from amlops.core import deployment_config as deployments
from amlops.core.names import LOCAL_ENDPOINT
from amlops.core.settings import ProjectSettings, ScoringSettings
from amlops.registry.mlflow import Registry
from amlops.registry.records import ensure_servable
from amlops.serving.local import LocalEndpoint
from amlops.serving.stage import StagedDeployment, stage

INFERENCE_CONFIG_FILE = "inferenceConfig.yml"
LOCAL_DEPLOYMENT_CONFIG_FILE = "deploymentConfig.local.yml"


def scoring_limits(deployment: deployments.ServingLimits) -> ScoringSettings:
    """Request and client limits: the deployment config's where it sets them, the defaults elsewhere."""
    overrides = {
        "max_batch_rows": deployment.maxBatchRows,
        "max_request_bytes": deployment.maxRequestBytes,
        "connection_threads": deployment.connectionThreads,
        "client_timeout_seconds": deployment.clientTimeoutSeconds,
    }
    return ScoringSettings(**{k: v for k, v in overrides.items() if v is not None})


def local_deployment_config(settings: ProjectSettings, path: Path | None = None) -> deployments.LocalDeploymentConfig:
    """The local deployment configuration, checked to be ``computeType: local``."""
    path = path or settings.root / LOCAL_DEPLOYMENT_CONFIG_FILE
    parsed = deployments.load_deployment_config(path)
    if not isinstance(parsed, deployments.LocalDeploymentConfig):
        raise config.ConfigError(
            f"{path}: field 'computeType': is {parsed.computeType!r}; the local endpoint needs 'local'"
        )
    return parsed


def stage_version(
    version: str | None = None,
    *,
    settings: ProjectSettings | None = None,
    registry: Registry | None = None,
    deployment_config: Path | None = None,
    name: str = LOCAL_ENDPOINT,
) -> tuple[StagedDeployment, deployments.LocalDeploymentConfig]:
    """Download a registered version (production by default) and stage it under ``build/deploy/<name>``.

    Raises:
        RetiredVersionError: the version is retired (with who, when and why): nothing is downloaded or started.
        LookupError: no such version, or nothing in production.
    """
    settings = settings or ProjectSettings()
    registry = registry or Registry(settings)
    if version is None:
        chosen = registry.production()
        if chosen is None:
            raise LookupError(f"no version of {registry.name} is in production yet: run the pipeline first")
    else:
        chosen = registry.get(version)
    # Every local deploy (deploy, serve, run, the notebooks, retire --replace) stages here: a retired version stops.
    version = ensure_servable(chosen).version
    deployment = local_deployment_config(settings, deployment_config)
    inference = config.load_inference_config(settings.root / INFERENCE_CONFIG_FILE)
    target = settings.build_dir / "deploy" / name
    downloaded = registry.download(version, settings.build_dir / "downloads" / registry.name / str(version))
    staged = stage(
        downloaded, registry.name, str(version), inference, settings.root, target, scoring_limits(deployment)
    )
    return staged, deployment


def local_endpoint(
    version: str | None = None,
    *,
    settings: ProjectSettings | None = None,
    registry: Registry | None = None,
    deployment_config: Path | None = None,
    name: str = LOCAL_ENDPOINT,
    port: int | None = None,
) -> LocalEndpoint:
    """An unstarted local endpoint serving ``version`` (production by default).

    Args:
        version: Registered version; the production one when omitted.
        settings: Project settings.
        registry: The model registry.
        deployment_config: A ``computeType: local`` file; ``deploymentConfig.local.yml`` when omitted.
        name: Endpoint name (staging folder and state file).
        port: Overrides the configured port (0 = any free port).
    """
    settings = settings or ProjectSettings()
    staged, deployment = stage_version(
        version, settings=settings, registry=registry, deployment_config=deployment_config, name=name
    )
    if port is not None:
        deployment = deployment.model_copy(update={"port": port})
    return LocalEndpoint(staged, deployment, settings.endpoints_dir, name=name)
