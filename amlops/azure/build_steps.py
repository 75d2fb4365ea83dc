"""The lifecycle's Azure steps.

Shared by the CI build (:mod:`amlops.app.build`), the ``azure`` commands and the notebooks (:mod:`amlops.app.workflow`).
Each returns what the local step produces, so the callers do not care where training ran:

- :func:`train`: the training pipeline as an Azure ML pipeline job, followed until ``Completed``; returns the
  register step's ``registration.json`` with the job name as ``pipeline_run_id`` (the register step runs with
  ``--no-promote``, as the local build's does);
- :func:`download_model`: a registered version's MLflow model folder;
- :func:`tag_model`: tags added to a registered version (build id and URL).

Each connects to the workspace itself (fast failure without a workspace or credentials) unless given a client.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from amlops.azure import connection, data_assets, online, operations, render, rollout, translate
from amlops.azure.connection import offline_client
from amlops.azure.registry import AzureRegistry, azure_serving, record_cleanup, record_release, record_rollback
from amlops.azure.translate import Project
from amlops.core.azure_settings import AzureSettings
from amlops.core.config import ConfigError
from amlops.core.files import read_json
from amlops.core.lineage import now
from amlops.core.names import STAGES
from amlops.core.settings import ProjectSettings
from amlops.core.tags import LIVE_TAG
from amlops.lifecycle.retirement import GovernanceError, Say
from amlops.registry import events
from amlops.registry.records import DeploymentRecord, ensure_servable
from amlops.serving.deploy import scoring_limits
from amlops.serving.smoke import known_rows
from amlops.serving.stage import stage as stage_app
from amlops.steps import evaluate, register

log = logging.getLogger(__name__)


def _client(client: Any) -> Any:
    if client is not None:
        return client
    return connection.connect()  # looked up on the module: one place to stand a workspace in


def train(
    *,
    client: Any = None,
    project: Any = None,
    data: Path | str | None = None,
    inputs: dict[str, Any] | None = None,
    **options: Any,
) -> dict:
    """Run the training pipeline on Azure ML and return its outcome (``outcome.json`` of the build).

    Args:
        client: An ``MLClient``; connects to the configured workspace when omitted.
        project: The parsed project files; read from the project root when omitted.
        data: Training CSV or a data asset (``azureml:<name>:<version>`` or ``@latest``); the snapshot when omitted.
        inputs: Pipeline inputs to override (hyperparameters by name).
        **options: Passed to :func:`amlops.azure.operations.submit` (``poll_seconds``, ``timeout``, ``say``...).
    """
    project = project or Project.load()
    assets = render.training_assets(project, project.settings.build_dir / "azureml-submit", data, inputs)
    options.setdefault("timeout", AzureSettings().job_timeout)
    return outcome_of(_client(client), assets.pipeline, **options)


def outcome_of(client: Any, job: Any, **options: Any) -> dict:
    """Submit a training pipeline job, follow it to ``Completed``, and read its registration and decision."""
    return job_outcome(client, operations.submit(client, job, **options).name)


def job_outcome(client: Any, job_name: str) -> dict:
    """A completed training pipeline job's registration and decision.

    The events its register step emitted are delivered here (:func:`amlops.registry.events.relay`).
    """
    with tempfile.TemporaryDirectory(prefix="amlops-job-") as scratch:
        for output in (operations.REGISTRATION_OUTPUT, "evaluation"):
            client.jobs.download(job_name, output_name=output, download_path=scratch)
        outputs = Path(scratch) / "named-outputs"
        registration = read_json(outputs / operations.REGISTRATION_OUTPUT / register.REGISTRATION_FILE)
        decision = evaluate.load_decision(outputs / "evaluation")
    for event in registration.pop("events", []):  # emitted inside the job: its own event log is gone
        events.relay(event)
    return {
        "pipeline_run_id": job_name,
        **registration,
        "candidate": decision.candidate,
        "production": decision.production,
    }


def publish(
    *,
    client: Any = None,
    project: Any = None,
    data: Path | str | None = None,
    version: str | None = None,
    schedule: str | None = None,
    name: str | None = None,
    description: str | None = None,
    hyperparameters: dict[str, Any] | None = None,
    say: Any = log.info,
) -> Any:
    """Register the training pipeline as a pipeline component (v2's published pipeline), optionally scheduled.

    Args:
        client: An ``MLClient``; connects when omitted.
        project: The parsed project files.
        data: Training CSV of scheduled runs, or a data asset (``azureml:<name>:<version>`` or ``@latest``); the
            snapshot when omitted.
        version: Component version; a UTC timestamp when omitted.
        schedule: Cron expression (UTC) of a schedule created disabled.
        name: Must be the project's pipeline name when given (``pipeline run --published`` finds it by it).
        description: The component's description; the pipeline's own when omitted.
        hyperparameters: Input defaults replacing ``sklearn.runconfig``'s (by name).
        say: Progress lines.

    Raises:
        ConfigError: for another name, or a hyperparameter the run configuration does not have.
    """
    project = project or translate.Project.load()
    if name and name != project.pipeline_name:
        raise ConfigError(
            f"pipeline name {name!r}: on Azure ML the published pipeline component is named "
            f"{project.pipeline_name!r}, after the model (AMLOPS_MODEL_NAME); `pipeline run --published` finds it by it"
        )
    if hyperparameters:
        project = project.with_hyperparameters(hyperparameters)
    assets = render.training_assets(project, project.settings.build_dir / "azureml-submit", data)
    operations.validate_job(offline_client(), assets.pipeline)
    version = version or datetime.now(timezone.utc).strftime("%Y%m%d.%H%M%S")
    component = translate.pipeline_component(assets.pipeline)
    if description:
        component.description = description
    client = _client(client)
    job = None
    if schedule:
        data_input = assets.data
        if data_assets.is_reference(data_input):
            # A schedule keeps the version a label names when it is created (azure-ai-ml resolves it then): say
            # which; `azure register-data` moves the schedule to each new version.
            data_input = data_assets.pin(client, str(data_input))
            say(f"scheduled runs train on {data_input} (`azure register-data` moves them to a new version)")
        job = translate.scheduled_pipeline_job(project, f"azureml:{component.name}:{version}", data_input)
        job = translate.training_schedule(project, job, schedule, enabled=False)
    return operations.publish(client, component, version=version, schedule=job, say=say)


def run_published(
    *,
    client: Any = None,
    project: Any = None,
    data: Path | str | None = None,
    version: str | None = None,
    inputs: dict[str, Any] | None = None,
    **options: Any,
) -> dict:
    """Run the published pipeline component (latest version by default) with some inputs changed."""
    project = project or translate.Project.load()
    data_file = render.stage_data(
        data or project.settings.data_snapshot, project.settings.build_dir / "azureml-submit" / "data"
    )
    reference = f"azureml:{project.pipeline_name}" + (f":{version}" if version else "@latest")
    job = translate.scheduled_pipeline_job(project, reference, data_file, inputs)
    return outcome_of(_client(client), job, **options)


def release(
    stage: str,
    *,
    version: str | None = None,
    client: Any = None,
    config: Path | None = None,
    deployment_name: str | None = None,
    say: Any = log.info,
    **deploy_options: Any,
) -> Any:
    """Release a registered version to a stage (``preprod`` or ``prod``) as a new blue/green deployment.

    Every configuration error is raised before any Azure call; a retired version is refused before anything is
    created. The outcome is recorded on the versions involved (:func:`amlops.azure.registry.record_release`).
    Returns :class:`rollout.DeployResult`.
    """
    project = translate.Project.load()
    settings = project.settings
    chosen = STAGES[stage]
    config_path = Path(config or project.root / chosen.config_file)
    deployment_config = project.deployment_config(config_path)
    endpoint_name = AzureSettings().endpoint_name(chosen.name, settings)
    client = _client(client)
    name = settings.model_name
    version = operations.resolve_model_version(client, name, version)
    # Every Azure release (azure deploy, the DevOps release, notebooks, retire --replace) passes here.
    models = AzureRegistry(client, name, settings)
    ensure_servable(models.get(version))
    work = settings.build_dir / "azureml-deploy" / chosen.name
    model_folder = operations.download_model(client, name, version, work / "model")
    staged = stage_app(
        model_folder, name, version, project.inference, project.root, work / "staged", scoring_limits(deployment_config)
    )
    entities = online.online_entities(
        project,
        deployment_config,
        endpoint_name=endpoint_name,
        deployment_name=deployment_name or default_deployment_name(version),
        model=online.model_reference(name, version),
        code=staged.app_dir,
        environment=translate.scoring_environment(project),
        source=str(config_path),
    )
    say(f"releasing {name}:{version} to {chosen.description} ({entities.kind} endpoint {endpoint_name})")
    where = {"stage": chosen.name, "endpoint": endpoint_name, "deployment": entities.deployment.name}
    try:
        before = azure_serving(client, endpoint_name)
    except Exception as error:  # noqa: BLE001 - only the records of the replaced versions depend on it
        log.warning("could not list the deployments of %s before the release: %s", endpoint_name, error)
        before = {}
    try:
        result = rollout.deploy(
            client,
            entities.endpoint,
            entities.deployment,
            rollout.SmokeTarget(model_folder, name, version, known_rows(settings.data_snapshot)),
            say=say,
            **deploy_options,
        )
    except BaseException as error:
        record_release(models, version, before=before, error=error, **where)
        raise
    record_release(models, version, before=before, result=result, **where)
    say(f"released: {result.deployment} serves {name}:{version} at {result.scoring_uri}")
    say(f"  traffic {result.traffic}; deleted {result.deleted or 'nothing'}")
    return result


def cleanup(stage: str, *, client: Any = None, say: Say = log.info) -> list[str]:
    """Delete the deployments a stage keeps at 0% once its release is final, recording each on its version.

    The replaced version's record then says ``undeployed`` instead of "kept for rollback" (``models show``).
    """
    client = _client(client)
    settings = ProjectSettings()
    endpoint_name = AzureSettings().endpoint_name(stage, settings)
    before = azure_serving(client, endpoint_name)
    deleted = rollout.delete_idle(client, endpoint_name, say=say)
    models = AzureRegistry(client, settings.model_name, settings)
    record_cleanup(models, stage=stage, endpoint=endpoint_name, before=before, deleted=deleted)
    return deleted


def rollback(stage: str, *, to: str | None = None, client: Any = None, say: Any = log.info) -> tuple[str, Any]:
    """Send a stage's traffic back to the previous deployment (:func:`rollout.rollback`), recorded.

    A previous deployment that serves a retired version is refused before traffic moves.

    Returns:
        The deployment now serving, and its entity.
    """
    settings = ProjectSettings()
    endpoint_name = AzureSettings().endpoint_name(STAGES[stage].name, settings)
    client = _client(client)
    models = AzureRegistry(client, settings.model_name, settings)
    endpoint = client.online_endpoints.get(endpoint_name)
    before = azure_serving(client, endpoint_name)
    candidate = to or _rollback_candidate(endpoint, before)
    if candidate in before and before[candidate][0] == models.name:
        ensure_servable(models.get(before[candidate][1]))
    target, deployment = rollout.rollback(client, endpoint_name, to=to, say=say)
    record_rollback(
        models, stage=STAGES[stage].name, endpoint=endpoint_name, url=endpoint.scoring_uri, target=target, before=before
    )
    return target, deployment


def rollback_release(stage: str, deployment: str, *, client: Any = None, say: Any = log.info) -> str | None:
    """Undo one release: if traffic moved to ``deployment``, send it back to the deployment that release replaced.

    A release whose deployment never took traffic (it failed before, or its own deploy put traffic back) leaves the
    endpoint alone: another deployment kept at 0% by an earlier release is not this release's to restore.

    Returns:
        The deployment serving again, or ``None`` when traffic never moved.

    Raises:
        AzureOperationError: traffic moved, but no deployment it replaced is recorded.
    """
    client = _client(client)
    endpoint_name = AzureSettings().endpoint_name(STAGES[stage].name, ProjectSettings())
    endpoint = client.online_endpoints.get(endpoint_name)
    tags = endpoint.tags or {}
    if int((endpoint.traffic or {}).get(deployment, 0)) == 0 and tags.get(LIVE_TAG) != deployment:
        say(f"traffic never moved to {deployment} on {endpoint_name}: nothing to roll back")
        return None
    replaced = rollout.replaced_deployments(endpoint)
    if tags.get(LIVE_TAG) != deployment or not replaced:
        raise operations.AzureOperationError(
            f"{deployment} takes traffic on {endpoint_name}, but no deployment it replaced is recorded; "
            f"choose one: azure rollback --stage {stage} --to <deployment>"
        )
    target, _ = rollback(stage, to=replaced[0], client=client, say=say)
    return target


def _rollback_candidate(endpoint: Any, before: dict[str, tuple[str, str, int]]) -> str | None:
    """The deployment :func:`rollout.rollback` will choose (recorded previous one, else the only other one)."""
    recorded = rollout.replaced_deployments(endpoint)
    if recorded:
        return recorded[0]
    others = [name for name, (_, _, share) in before.items() if share <= 0]
    return others[0] if len(others) == 1 else None


def default_deployment_name(version: str, now: Any = None) -> str:
    """A new deployment name for a model version: ``v<version>-<MMDDHHMMSS>`` (unique per release)."""
    return rollout.deployment_name(version, (now or datetime.now(timezone.utc)).strftime("%m%d%H%M%S"))


def smoke_live(client: Any, endpoint_name: str, model: tuple[str, str]) -> Any:
    """Smoke-test what an endpoint serves its callers (no deployment header: the traffic split decides)."""
    model_name, version = model
    with tempfile.TemporaryDirectory(prefix="amlops-model-") as scratch:
        folder = operations.download_model(client, model_name, version, Path(scratch))
        endpoint = client.online_endpoints.get(endpoint_name)
        return rollout.smoke_deployment(
            endpoint.scoring_uri,
            rollout.endpoint_key(client, endpoint_name),
            None,
            rollout.SmokeTarget(folder, model_name, version, known_rows(ProjectSettings().data_snapshot)),
        )


def smoke(stage: str, *, client: Any = None) -> Any:
    """Smoke-test a stage's endpoint; the deployment taking all its traffic must answer as its model does."""
    endpoint_name = AzureSettings().endpoint_name(STAGES[stage].name, ProjectSettings())
    client = _client(client)
    endpoint = client.online_endpoints.get(endpoint_name)
    live = [name for name, share in (endpoint.traffic or {}).items() if int(share) == 100]
    if not live:
        raise operations.AzureOperationError(
            f"endpoint {endpoint_name}: no deployment takes all traffic ({dict(endpoint.traffic or {})}); "
            "finish or roll back the release first"
        )
    deployment = client.online_deployments.get(name=live[0], endpoint_name=endpoint_name)
    return smoke_live(client, endpoint_name, rollout.model_of(deployment))


def endpoint_access(stage: str, *, client: Any = None) -> tuple[dict[str, Any], str]:
    """A stage's endpoint details and its key (never log the key)."""
    endpoint_name = AzureSettings().endpoint_name(STAGES[stage].name, ProjectSettings())
    client = _client(client)
    return rollout.endpoint_details(client, endpoint_name), rollout.endpoint_key(client, endpoint_name)


def download_model(version: str, dest: Path, *, client: Any = None, model_name: str | None = None) -> Path:
    """Download a registered version's MLflow model folder to ``dest`` (replaced if it exists)."""
    name = model_name or ProjectSettings().model_name
    client = _client(client)
    dest = Path(dest)
    with tempfile.TemporaryDirectory(prefix="amlops-model-") as scratch:
        folder = operations.download_model(client, name, str(version), Path(scratch))
        if dest.exists():
            shutil.rmtree(dest)
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copytree(folder, dest)
    return dest


def tag_model(version: str, tags: dict[str, str], *, client: Any = None, model_name: str | None = None) -> Any:
    """Add ``tags`` to a registered version (existing tags are kept; same keys are overwritten)."""
    return operations.tag_model(_client(client), model_name or ProjectSettings().model_name, version, tags)


def redeploy(client: Any, record: DeploymentRecord, version: str, say: Say = log.info) -> DeploymentRecord:
    """Serve ``version`` on the Azure endpoint of ``record`` through a blue/green release (``retire --replace``)."""
    settings = ProjectSettings()
    stage = record.stage or stage_of(record.endpoint, settings)
    say(f"replacing it on Azure endpoint {record.endpoint} ({stage}) by v{version}")
    result = release(stage, version=version, client=client, say=say)
    return DeploymentRecord(
        "azure",
        result.endpoint,
        result.deployment,
        result.scoring_uri,
        "succeeded",
        now(),
        stage=stage,
        traffic=result.traffic.get(result.deployment),
    )


def stage_of(endpoint: str, settings: ProjectSettings) -> str:
    """The release stage whose endpoint is ``endpoint``."""
    for stage in STAGES:
        if AzureSettings().endpoint_name(stage, settings) == endpoint:
            return stage
    raise GovernanceError(f"endpoint {endpoint} is not a release stage's endpoint ({sorted(STAGES)})")
