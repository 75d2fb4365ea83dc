"""The thin layer that calls Azure ML.

Every function takes an ``MLClient`` (or anything with the same operation attributes: ``jobs``, ``components``,
``schedules``, ``models``, ``online_endpoints``, ``online_deployments``).

Deployments are blue/green: a release creates a *new* named deployment beside the live one, waits for it,
smoke-tests it through the endpoint with the endpoint's key (``azureml-model-deployment`` routes the request to
it while it has no traffic), optionally mirrors live traffic to it, shifts traffic in steps (smoke-testing after
each), and deletes the old deployment only once the new one serves everything and passed. Any failure after
traffic moved puts traffic back where it was; a failed new deployment is deleted (``keep_failed`` keeps it).

Keys and tokens are passed to the smoke test and never logged.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from amlops.core.config import ConfigError
from amlops.core.errors import AmlopsError
from amlops.core.files import read_json
from amlops.core.settings import PRODUCTION_ALIAS, ProjectSettings
from amlops.core.tags import PRODUCTION_TAG
from amlops.registry.base import Version
from amlops.registry.mlflow import Registry as MlflowRegistry
from amlops.scoring.model import find_mlmodel_dir
from amlops.steps import evaluate, prep, register
from amlops.steps import train as train_step

log = logging.getLogger(__name__)

#: The ``MLClient`` attributes this module uses (a test checks they exist on ``MLClient``).
CLIENT_OPERATIONS = (
    "jobs",
    "components",
    "schedules",
    "models",
    "online_endpoints",
    "online_deployments",
    "workspaces",
    "compute",
)
#: Job states after which a job does not change any more (azure-ai-ml's ``RunHistoryConstants.TERMINAL_STATUSES``).
TERMINAL_STATES = ("Completed", "Failed", "Canceled", "NotResponding", "Paused")
#: Routes a scoring request to one deployment, whatever the traffic split.
DEPLOYMENT_HEADER = "azureml-model-deployment"
#: Outputs of the training pipeline that :func:`register_from_job` reads.
PIPELINE_OUTPUTS = ("prepared", "trained", "evaluation")
REGISTRATION_OUTPUT = "registration"

Say = Callable[[str], None]


class AzureOperationError(AmlopsError, RuntimeError):
    """An Azure ML operation did not end as required (job failed, deployment unhealthy, nothing to roll back to)."""


# --- the workspace ------------------------------------------------------------------------------------------------


def workspace_tracking_uri(client: Any) -> str:
    """The workspace's MLflow tracking and registry URI (``azureml://...``): runs logged there show in studio."""
    uri = client.workspaces.get(client.workspace_name).mlflow_tracking_uri
    if not uri:
        raise AzureOperationError(f"workspace {client.workspace_name} reports no MLflow tracking URI")
    return uri


# --- jobs -----------------------------------------------------------------------------------------------------


def validate_job(client: Any, job: Any) -> None:
    """Validate a job with the SDK's own checks (offline: nothing is sent).

    Raises:
        ConfigError: listing every problem the SDK found.
    """
    result = client.jobs.validate(job)
    if not result.passed:
        problems = "; ".join(f"{path}: {message}" for path, message in sorted(result.error_messages.items()))
        raise ConfigError(f"the {job.type} job does not validate: {problems}")


def submit(
    client: Any,
    job: Any,
    *,
    wait: bool = True,
    poll_seconds: float = 15.0,
    timeout: float | None = None,
    stream_logs: bool = False,
    say: Say = log.info,
    sleep: Callable[[float], None] = time.sleep,
) -> Any:
    """Validate and submit a job; unless ``wait`` is false, follow it until it ends.

    Raises:
        AzureOperationError: the job ended in any state but ``Completed`` (or ``timeout`` passed).
    """
    validate_job(client, job)
    created = client.jobs.create_or_update(job, experiment_name=job.experiment_name)
    say(f"submitted {created.type} job {created.name} (experiment {created.experiment_name})")
    say(f"  studio: {created.studio_url}")
    if not wait:
        return created
    return wait_for_job(
        client, created.name, poll_seconds=poll_seconds, timeout=timeout, stream_logs=stream_logs, say=say, sleep=sleep
    )


def wait_for_job(
    client: Any,
    name: str,
    *,
    poll_seconds: float = 15.0,
    timeout: float | None = None,
    stream_logs: bool = False,
    say: Say = log.info,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> Any:
    """Report a job's status changes until it reaches a terminal state; succeed only on ``Completed``."""
    if stream_logs:
        client.jobs.stream(name)  # blocks until the job ends
    started = clock()
    last = None
    while True:
        job = client.jobs.get(name)
        if job.status != last:
            say(f"job {name}: {job.status}")
            last = job.status
        if job.status in TERMINAL_STATES:
            break
        if timeout is not None and clock() - started > timeout:
            raise AzureOperationError(
                f"job {name} still {job.status} after {timeout:g} s; it keeps running: {job.studio_url}"
            )
        sleep(poll_seconds)
    if job.status != "Completed":
        raise AzureOperationError(f"job {name} ended {job.status}: {job.studio_url}")
    return job


# --- published pipeline -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Published:
    """What :func:`publish` created."""

    component_id: str
    name: str
    version: str
    schedule: str | None = None


def publish(client: Any, component: Any, *, version: str, schedule: Any = None, say: Say = log.info) -> Published:
    """Register the training pipeline as a pipeline component (v2's published pipeline), optionally a schedule.

    A schedule is created disabled (and disabled again if the service enabled it anyway).
    """
    registered = client.components.create_or_update(component, version=version)
    say(f"published pipeline component {registered.name}:{registered.version}")
    say(f"  id: {registered.id}")
    schedule_name = None
    if schedule is not None:
        created = client.schedules.begin_create_or_update(schedule).result()
        if getattr(created, "is_enabled", False):
            client.schedules.begin_disable(created.name).result()
        schedule_name = created.name
        say(f"created schedule {created.name} (disabled; enable it with `az ml schedule enable --name {created.name}`)")
    return Published(registered.id, registered.name, registered.version, schedule_name)


# --- model registration ---------------------------------------------------------------------------------------


def register_from_job(
    client: Any,
    job_name: str,
    *,
    model_name: str,
    root: Path,
    scratch: Path,
    force: bool = False,
    say: Say = log.info,
) -> Any:
    """Register the ``trained`` output of a completed training pipeline job, with the local lineage tags.

    This is the models-API route; the pipeline's own register step takes the MLflow route. A job whose register
    step already registered a version is refused (``force`` registers again). The tags are
    :func:`amlops.steps.register.lineage_tags` of the job's own outputs (metrics, parameters, data sha256,
    decision), with the job name as the pipeline run id and the git commit Azure ML recorded for the job.

    Raises:
        AzureOperationError: the job is not a completed training pipeline, or its decision was not ``register``
            (``force`` registers anyway; the tags then carry the real decision).
    """
    from azure.ai.ml.constants import AssetTypes
    from azure.ai.ml.entities import Model

    job = client.jobs.get(job_name)
    if job.status != "Completed":
        raise AzureOperationError(f"job {job_name} is {job.status}; only a Completed job's output is registered")
    missing = [name for name in PIPELINE_OUTPUTS if name not in (job.outputs or {})]
    if missing:
        raise AzureOperationError(f"job {job_name} has no output(s) {missing}: not a training pipeline job")
    for output in PIPELINE_OUTPUTS:
        client.jobs.download(job_name, output_name=output, download_path=str(scratch))
    outputs = Path(scratch) / "named-outputs"
    if REGISTRATION_OUTPUT in job.outputs and not force:
        client.jobs.download(job_name, output_name=REGISTRATION_OUTPUT, download_path=str(scratch))
        done = read_json(outputs / REGISTRATION_OUTPUT / register.REGISTRATION_FILE)
        if done.get("registered_version"):
            raise AzureOperationError(
                f"job {job_name}'s register step already registered {done.get('model_name')} version "
                f"{done['registered_version']} (through MLflow); nothing registered (--force registers it again)"
            )
    decision = evaluate.load_decision(outputs / "evaluation")
    if not decision.register and not force:
        raise AzureOperationError(
            f"job {job_name} decided {decision.outcome!r} ({'; '.join(decision.reasons)}); nothing registered "
            "(--force registers it anyway)"
        )
    train_record = read_json(outputs / "trained" / train_step.INFO_FILE)
    fingerprint = read_json(outputs / "prepared" / prep.FINGERPRINT_FILE)
    tags = register.lineage_tags(train_record, decision, fingerprint, job_name, root)
    properties = job.properties or {}
    if properties.get("azureml.git.commit"):
        tags["git_commit"] = properties["azureml.git.commit"]
        tags["git_dirty"] = str(properties.get("azureml.git.dirty", "unknown")).lower()
    model = Model(
        name=model_name,
        path=f"azureml://jobs/{job_name}/outputs/trained/paths/{train_step.MODEL_DIR}",
        type=AssetTypes.MLFLOW_MODEL,
        description="; ".join(decision.reasons),
        tags=tags,
    )
    created = client.models.create_or_update(model)
    say(f"registered model {created.name}:{created.version} from job {job_name}")
    say(f"  id: {created.id}")
    return created


def register_model_folder(client: Any, name: str, folder: Path, tags: dict[str, str], description: str = "") -> Any:
    """Register a local MLflow model folder (an import) as a new version of ``name``; the SDK uploads it."""
    from azure.ai.ml.constants import AssetTypes
    from azure.ai.ml.entities import Model

    created = client.models.create_or_update(
        Model(name=name, path=str(folder), type=AssetTypes.MLFLOW_MODEL, description=description, tags=tags)
    )
    log.info("registered model %s:%s from %s", created.name, created.version, folder)
    return created


def resolve_model_version(client: Any, name: str, version: str | None) -> str:
    """``version``, or the latest registered version of ``name``."""
    if version and version != "latest":
        return str(client.models.get(name=name, version=version).version)
    return str(client.models.get(name=name, label="latest").version)


def download_model(client: Any, name: str, version: str, dest: Path) -> Path:
    """Download a registered model and return its MLflow model folder.

    The models API comes first. It has been seen to write nothing for versions registered from a job's output or
    through MLflow (their files sit in the workspace's artifact store); the workspace's MLflow registry, the route
    Azure ML documents for MLflow models, is asked next.

    Raises:
        AzureOperationError: neither route gives a folder with an ``MLmodel`` file.
    """
    dest = Path(dest)
    client.models.download(name=name, version=version, download_path=str(dest / "models-api"))
    try:
        return find_mlmodel_dir(dest / "models-api" / name)
    except FileNotFoundError as error:
        log.warning(
            "models.download gave no MLflow model for %s:%s (%s); asking the MLflow registry", name, version, error
        )
    registry = MlflowRegistry(ProjectSettings(model_name=name, tracking_uri=workspace_tracking_uri(client)))
    try:
        return find_mlmodel_dir(registry.download(version, dest / "mlflow" / name))
    except (FileNotFoundError, LookupError) as error:
        raise AzureOperationError(
            f"model {name}:{version} downloaded, but neither the models API nor the MLflow registry gave a folder "
            f"with an MLmodel file ({error})"
        ) from None


def as_version(model: Any, name: str | None = None, version: str | None = None) -> Version:
    """An Azure ML model version as the rest of the package sees registry versions (the one mapping).

    Tolerates entities without tags, name or version (``name``/``version`` fill in what was asked for).
    """
    tags = {key: str(value) for key, value in (getattr(model, "tags", None) or {}).items()}
    created = getattr(getattr(model, "creation_context", None), "created_at", None)
    return Version(
        name=getattr(model, "name", None) or name,
        version=str(getattr(model, "version", None) or version),
        run_id=getattr(model, "job_name", None),
        source=str(getattr(model, "path", "") or ""),
        tags=tags,
        aliases=(PRODUCTION_ALIAS,) if tags.get(PRODUCTION_TAG) == "true" else (),
        created_ms=int(created.timestamp() * 1000) if hasattr(created, "timestamp") else 0,
    )


def model_versions(client: Any, name: str) -> list[Any]:
    """Every registered version of ``name``, newest first, as :class:`amlops.registry.base.Version`."""
    versions = [as_version(model) for model in client.models.list(name=name)]
    return sorted(versions, key=lambda v: int(v.version), reverse=True)


def production_version(client: Any, name: str) -> Any:
    """The version whose ``production`` tag is ``true`` (newest if several), or ``None``."""
    live = [v for v in model_versions(client, name) if v.in_production]
    return live[0] if live else None


def promote(client: Any, name: str, version: str, *, say: Say = log.info) -> Any:
    """Move the production marker to ``version``: the same ``production`` tag the MLflow registry reads.

    The version's ``stage`` becomes ``Production`` too (studio shows it); the previous version's tag turns
    ``false`` and its stage ``Development`` (archiving a version is a separate, deliberate act).
    """
    previous = production_version(client, name)
    model = client.models.get(name=name, version=str(version))
    model.tags = {**(model.tags or {}), PRODUCTION_TAG: "true"}
    if previous and previous.version != str(version):
        model.tags["replaced_version"] = previous.version
    model.stage = "Production"
    client.models.create_or_update(model)
    if previous and previous.version != str(version):
        old = client.models.get(name=name, version=previous.version)
        old.tags = {**(old.tags or {}), PRODUCTION_TAG: "false"}
        old.stage = "Development"
        client.models.create_or_update(old)
    say(f"{name}:{version} is now production (was {previous.version if previous else 'none'})")
    return model


def is_missing(error: Exception) -> bool:
    """Whether an SDK error says the resource does not exist."""
    from azure.core.exceptions import ResourceNotFoundError

    return isinstance(error, ResourceNotFoundError)


def tag_model(client: Any, name: str, version: str, tags: dict[str, str]) -> Any:
    """Add ``tags`` to a registered version (existing tags are kept; same keys are overwritten)."""
    model = client.models.get(name=name, version=str(version))
    model.tags = {**(model.tags or {}), **{key: str(value) for key, value in tags.items()}}
    updated = client.models.create_or_update(model)
    log.info("tagged %s:%s with %s", name, version, sorted(tags))
    return updated


@contextlib.contextmanager
def refusals_reported() -> Iterator[None]:
    """Turn what Azure ML refuses (any ``AzureError``) into an :class:`AzureOperationError` with its one-line message.

    Also quiets azure-ai-ml's warning for each experimental class it loads (schedules, data collectors).
    """
    from azure.core.exceptions import AzureError

    logging.getLogger("azure.ai.ml._utils._experimental").setLevel(logging.ERROR)
    try:
        yield
    except AzureError as error:
        raise AzureOperationError(f"Azure ML refused: {' '.join(str(error).split())[:2000]}") from error
