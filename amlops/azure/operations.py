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

import logging
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from amlops.core.config import ConfigError
from amlops.core.files import read_json
from amlops.core.settings import PRODUCTION_ALIAS
from amlops.core.tags import PRODUCTION_TAG
from amlops.registry.base import Version
from amlops.scoring import find_mlmodel_dir
from amlops.serving.client import ScoringClient
from amlops.serving.smoke import smoke_test
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
#: Endpoint tags recording the blue/green history (read by :func:`rollback`).
LIVE_TAG = "amlops-live-deployment"
PREVIOUS_TAG = "amlops-previous-deployment"
#: Outputs of the training pipeline that :func:`register_from_job` reads.
PIPELINE_OUTPUTS = ("prepared", "trained", "evaluation")
REGISTRATION_OUTPUT = "registration"

Say = Callable[[str], None]


class AzureOperationError(RuntimeError):
    """An Azure ML operation did not end as required (job failed, deployment unhealthy, nothing to roll back to)."""


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
    """Download a registered model and return its MLflow model folder."""
    client.models.download(name=name, version=version, download_path=str(dest))
    return find_mlmodel_dir(Path(dest) / name)


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


def _download_aml_uri(client: Any, uri: str, dest: Path) -> Path:
    """Download an ``azureml://datastores/...`` path (the SDK's own downloader; no public API for it in 1.35)."""
    from azure.ai.ml._artifacts._artifact_utilities import download_artifact_from_aml_uri

    return Path(download_artifact_from_aml_uri(uri, str(dest), client.datastores))


def download_data_asset(client: Any, reference: str, dest: Path) -> Path:
    """Download a data asset (``azureml:<name>:<version>`` or ``azureml:<name>@latest``) and return its CSV file.

    Raises:
        AzureOperationError: the asset is not a CSV file or a folder holding exactly one.
    """
    name = reference.removeprefix("azureml:")
    name, _, label = name.partition("@")
    name, _, version = name.partition(":")
    asset = client.data.get(name=name, label=label or "latest") if not version else client.data.get(name, version)
    if not str(asset.path).startswith("azureml://"):
        raise AzureOperationError(f"data asset {reference} points at {asset.path}; only datastore paths are read")
    folder = _download_aml_uri(client, str(asset.path), Path(dest))
    files = sorted(Path(folder).rglob("*.csv")) if Path(folder).is_dir() else [Path(folder)]
    if len(files) != 1:
        raise AzureOperationError(f"data asset {reference}: expected one CSV file, found {[f.name for f in files]}")
    return files[0]


# --- endpoints and deployments ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class SmokeTarget:
    """What the live endpoint must answer: the model's own predictions for known rows, and its identity."""

    model_folder: Path
    model_name: str
    model_version: str
    rows: Any


#: ``smoke(scoring_uri, key, deployment or None, target)``; raises on any failure.
SmokeCheck = Callable[[str, str, "str | None", SmokeTarget], Any]


def smoke_deployment(scoring_uri: str, key: str, deployment: str | None, target: SmokeTarget) -> Any:
    """The project's smoke test (:func:`amlops.serving.smoke.smoke_test`) through the endpoint, with its key.

    ``deployment`` routes the requests to one deployment (``azureml-model-deployment``), traffic or not.
    """
    client = ScoringClient(scoring_uri, key=key, timeout=30.0)
    if deployment:
        client.session.headers[DEPLOYMENT_HEADER] = deployment
    return smoke_test(client, target.model_folder, target.rows, target.model_name, target.model_version)


def endpoint_key(client: Any, endpoint_name: str) -> str:
    """The endpoint's primary key (key auth) or access token (token auth). Never log it."""
    keys = client.online_endpoints.get_keys(endpoint_name)
    secret = getattr(keys, "primary_key", None) or getattr(keys, "access_token", None)
    if not secret:
        raise AzureOperationError(f"endpoint {endpoint_name} returned no key or token")
    return secret


def is_missing(error: Exception) -> bool:
    """Whether an SDK error says the resource does not exist."""
    from azure.core.exceptions import ResourceNotFoundError

    return isinstance(error, ResourceNotFoundError)


def ensure_endpoint(client: Any, endpoint: Any, say: Say = log.info) -> Any:
    """The existing endpoint of that name (checked to be the same kind), or a newly created one."""
    name = endpoint.name
    try:
        existing = client.online_endpoints.get(name)
    except Exception as error:
        if not is_missing(error):
            raise
        say(f"creating endpoint {name} ({type(endpoint).__name__}, auth {endpoint.auth_mode})")
        client.online_endpoints.begin_create_or_update(endpoint).result()
        return client.online_endpoints.get(name)
    if type(existing).__name__ != type(endpoint).__name__:
        raise AzureOperationError(
            f"endpoint {name} exists as a {type(existing).__name__}, the config asks for a {type(endpoint).__name__}; "
            "use another endpoint name (AMLOPS_AZURE_<STAGE>_ENDPOINT)"
        )
    if str(existing.auth_mode).lower() != str(endpoint.auth_mode).lower():
        raise AzureOperationError(
            f"endpoint {name} uses auth mode {existing.auth_mode}, the config asks for {endpoint.auth_mode}; the auth "
            "mode of an endpoint cannot change: use another endpoint name"
        )
    compute = getattr(endpoint, "compute", None)
    if compute and not str(existing.compute).rstrip("/").endswith(str(compute).removeprefix("azureml:")):
        raise AzureOperationError(f"endpoint {name} runs on {existing.compute}, the config asks for {compute}")
    return existing


def split_traffic(live: dict[str, int], new: str, percent: int) -> dict[str, int]:
    """``percent`` to ``new``, the rest shared by the live deployments in their current proportions (sums to 100)."""
    if not live or percent >= 100:
        return {new: 100, **dict.fromkeys(live, 0)}
    rest = 100 - percent
    total = sum(live.values())
    exact = {name: rest * share / total for name, share in live.items()}
    shares = {name: int(value) for name, value in exact.items()}
    # Largest remainders get the points lost to rounding down.
    for name in sorted(exact, key=lambda n: exact[n] - shares[n], reverse=True)[: rest - sum(shares.values())]:
        shares[name] += 1
    return {new: percent, **shares}


def _healthy(client: Any, name: str, endpoint_name: str) -> Any:
    deployment = client.online_deployments.get(name=name, endpoint_name=endpoint_name)
    state = str(getattr(deployment, "provisioning_state", "") or "")
    if state.lower() != "succeeded":
        state = state or "in an unknown state"
        raise AzureOperationError(
            f"deployment {name} on {endpoint_name} is {state}: {_logs(client, name, endpoint_name)}"
        )
    return deployment


def _logs(client: Any, name: str, endpoint_name: str, lines: int = 40) -> str:
    try:
        text = client.online_deployments.get_logs(name=name, endpoint_name=endpoint_name, lines=lines)
    except Exception as error:  # noqa: BLE001 - logs are a courtesy in an error message, never the error itself
        return f"(no logs: {error})"
    return f"last {lines} log lines:\n{text}" if text else "(no logs)"


def _update(client: Any, endpoint: Any) -> Any:
    client.online_endpoints.begin_create_or_update(endpoint).result()
    return endpoint


@dataclass
class DeployResult:
    """What :func:`deploy` did."""

    endpoint: str
    deployment: str
    scoring_uri: str
    traffic: dict[str, int]
    previous: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    #: The new deployment's share after each traffic change, in order (``[10, 50, 100]``; ``[100]`` at once).
    traffic_steps: list[int] = field(default_factory=list)


def deploy(
    client: Any,
    endpoint: Any,
    deployment: Any,
    target: SmokeTarget,
    *,
    smoke: SmokeCheck = smoke_deployment,
    traffic_steps: Iterable[int] = (100,),
    mirror_percent: int = 0,
    mirror_seconds: float = 0.0,
    step_seconds: float = 0.0,
    keep_old: bool = False,
    keep_failed: bool = False,
    say: Say = log.info,
    sleep: Callable[[float], None] = time.sleep,
) -> DeployResult:
    """Blue/green: create ``deployment`` beside the live one, smoke-test it, move traffic, retire the old one.

    Args:
        client: An ``MLClient``.
        endpoint: The endpoint entity (created if it does not exist).
        deployment: The new deployment entity; its name must be new on the endpoint.
        target: What the smoke test expects from the new deployment.
        smoke: The smoke test (the project's, through the endpoint, by default).
        traffic_steps: Percentages of traffic for the new deployment, in order; 100 is always the last.
        mirror_percent: Before moving traffic, mirror this share of live traffic to the new deployment.
        mirror_seconds: How long to mirror before moving traffic.
        step_seconds: How long to watch each traffic step before the next.
        keep_old: Keep the old deployment (at 0%) for :func:`rollback`; by default it is deleted once the new one
            serves all traffic and passed its smoke test.
        keep_failed: Keep a new deployment that failed (for its logs); by default it is deleted.
        say: Progress lines.
        sleep: Waits (replaced in tests).

    Raises:
        SmokeTestFailure, ScoringError: the new deployment answered wrongly; traffic is back where it was.
        AzureOperationError: the deployment could not be created or became unhealthy; traffic is back.
    """
    endpoint_name = endpoint.name
    new = deployment.name
    steps = sorted({int(step) for step in traffic_steps if 0 < int(step) < 100} | {100})
    if not 0 <= mirror_percent <= 50:
        raise ConfigError(f"mirror traffic is {mirror_percent}%; Azure ML allows 0-50%")

    live_endpoint = ensure_endpoint(client, endpoint, say)
    existing = [item.name for item in client.online_deployments.list(endpoint_name)]
    if new in existing:
        raise AzureOperationError(
            f"deployment {new} already exists on {endpoint_name} (deployments: {existing}); a release creates a new "
            "deployment beside the live one: choose another deployment name"
        )
    before = dict(live_endpoint.traffic or {})
    live = {name: int(share) for name, share in before.items() if int(share) > 0}
    say(f"creating deployment {new} on {endpoint_name} (live now: {live or 'none'})")

    def discard_new() -> None:
        if keep_failed:
            say(f"kept the failed deployment {new} (--keep-failed) for its logs; it has no traffic")
            return
        say(f"deleting the failed deployment {new}")
        client.online_deployments.begin_delete(name=new, endpoint_name=endpoint_name).result()

    try:
        client.online_deployments.begin_create_or_update(deployment).result()
        _healthy(client, new, endpoint_name)
    except Exception as error:
        detail = error if isinstance(error, AzureOperationError) else f"{error} {_logs(client, new, endpoint_name)}"
        discard_new()
        raise AzureOperationError(f"deployment {new} on {endpoint_name} failed; traffic unchanged: {detail}") from error

    scoring_uri = live_endpoint.scoring_uri
    key = endpoint_key(client, endpoint_name)

    def restore(reason: str) -> None:
        live_endpoint.traffic = {**before, new: 0}
        live_endpoint.mirror_traffic = {}
        _update(client, live_endpoint)
        say(f"traffic restored to {before or 'none'} ({reason})")

    say(f"smoke test of {new} (no traffic yet) through {scoring_uri}")
    try:
        smoke(scoring_uri, key, new, target)
    except Exception:
        discard_new()
        raise

    moved = False
    applied: list[int] = []
    try:
        if mirror_percent and live:
            live_endpoint.mirror_traffic = {new: mirror_percent}
            _update(client, live_endpoint)
            say(f"mirroring {mirror_percent}% of live traffic to {new} for {mirror_seconds:g} s")
            sleep(mirror_seconds)
            _healthy(client, new, endpoint_name)
            live_endpoint.mirror_traffic = {}
            _update(client, live_endpoint)
        for percent in steps if live else [100]:
            traffic = split_traffic(live, new, percent)
            live_endpoint.traffic = traffic
            live_endpoint.tags = {
                **(live_endpoint.tags or {}),
                LIVE_TAG: new,
                PREVIOUS_TAG: ",".join(live),
            }
            _update(client, live_endpoint)
            moved = True
            applied.append(percent)
            say(f"traffic on {endpoint_name}: {traffic}")
            if percent < 100:
                sleep(step_seconds)
                _healthy(client, new, endpoint_name)
                smoke(scoring_uri, key, new, target)
        # Everything goes to the new deployment now: test the endpoint exactly as clients call it.
        smoke(scoring_uri, key, None, target)
        _healthy(client, new, endpoint_name)
    except Exception as error:
        if moved or live_endpoint.mirror_traffic:
            restore(f"{type(error).__name__} while moving traffic to {new}")
        discard_new()
        raise

    deleted = []
    if not keep_old:
        deleted, live_endpoint = _delete(client, live_endpoint, live, say)
    return DeployResult(endpoint_name, new, scoring_uri, dict(live_endpoint.traffic), list(live), deleted, applied)


def _delete(client: Any, endpoint: Any, names: Iterable[str], say: Say) -> tuple[list[str], Any]:
    """Delete deployments that take no traffic, then drop them from the endpoint's traffic map and tags."""
    deleted = []
    for old in names:
        say(f"deleting the old deployment {old} (the new one is healthy and serves all traffic)")
        client.online_deployments.begin_delete(name=old, endpoint_name=endpoint.name).result()
        deleted.append(old)
    if deleted:
        # Re-read: the service has dropped the deleted deployments from the traffic map.
        endpoint = client.online_endpoints.get(endpoint.name)
        endpoint.traffic = {k: v for k, v in (endpoint.traffic or {}).items() if k not in deleted}
        endpoint.tags = {**(endpoint.tags or {}), PREVIOUS_TAG: ""}
        _update(client, endpoint)
    return deleted, endpoint


def delete_idle(client: Any, endpoint_name: str, *, say: Say = log.info) -> list[str]:
    """Delete the deployments an endpoint keeps at 0% (``deploy --keep-old``) once a release is final.

    Raises:
        AzureOperationError: if no deployment takes all the traffic (a release is still moving it).
    """
    endpoint = client.online_endpoints.get(endpoint_name)
    traffic = {name: int(share) for name, share in (endpoint.traffic or {}).items()}
    if 100 not in traffic.values():
        raise AzureOperationError(f"endpoint {endpoint_name}: traffic {traffic} is split; finish the release first")
    idle = [item.name for item in client.online_deployments.list(endpoint_name) if traffic.get(item.name, 0) == 0]
    return _delete(client, endpoint, idle, say)[0]


_MODEL_ID = re.compile(r"(?:models/|azureml:)(?P<name>[^/:@]+)(?:/versions/|:)(?P<version>[^/:]+)$")


def model_of(deployment: Any) -> tuple[str, str]:
    """Name and version of the model a deployment serves (from ``azureml:n:v`` or an ARM id)."""
    found = _MODEL_ID.search(str(getattr(deployment, "model", "") or ""))
    if not found:
        raise AzureOperationError(f"deployment {deployment.name} serves {deployment.model!r}, not a registered model")
    return found["name"], found["version"]


def rollback(client: Any, endpoint_name: str, *, to: str | None = None, say: Say = log.info) -> tuple[str, Any]:
    """Send all traffic back to the previous deployment (kept by ``deploy --keep-old``, or named with ``to``).

    Returns:
        The deployment now serving, and its entity.

    Raises:
        AzureOperationError: there is no previous deployment to return to.
    """
    endpoint = client.online_endpoints.get(endpoint_name)
    deployments = {item.name: item for item in client.online_deployments.list(endpoint_name)}
    current = [name for name, share in (endpoint.traffic or {}).items() if int(share) > 0]
    if to:
        candidates = [to]
    else:
        recorded = [name for name in str((endpoint.tags or {}).get(PREVIOUS_TAG, "")).split(",") if name]
        others = [name for name in deployments if name not in current]
        candidates = recorded or (others if len(others) == 1 else [])
    if not candidates:
        raise AzureOperationError(
            f"endpoint {endpoint_name}: no previous deployment recorded (deployments: {sorted(deployments)}, live: "
            f"{current}); name one with --to, or redeploy an earlier model version"
        )
    gone = [name for name in candidates if name not in deployments]
    if gone:
        raise AzureOperationError(
            f"endpoint {endpoint_name}: the previous deployment {gone} no longer exists (deleted after a healthy "
            "release; deploy with --keep-old to keep it); redeploy an earlier model version with "
            "`azure deploy --version`"
        )
    target = candidates[0]
    _healthy(client, target, endpoint_name)
    endpoint.traffic = {**dict.fromkeys(deployments, 0), target: 100}
    endpoint.mirror_traffic = {}
    endpoint.tags = {
        **(endpoint.tags or {}),
        LIVE_TAG: target,
        PREVIOUS_TAG: ",".join(n for n in current if n != target),
    }
    _update(client, endpoint)
    say(f"traffic on {endpoint_name}: {endpoint.traffic} (rolled back from {current or 'none'})")
    return target, deployments[target]


def endpoint_details(client: Any, endpoint_name: str) -> dict[str, Any]:
    """URL, auth mode, traffic and deployments of an endpoint (no keys)."""
    endpoint = client.online_endpoints.get(endpoint_name)
    deployments = []
    for item in client.online_deployments.list(endpoint_name):
        deployments.append(
            {
                "name": item.name,
                "model": str(item.model),
                "state": getattr(item, "provisioning_state", None),
                "instance_type": getattr(item, "instance_type", None),
                "instance_count": getattr(item, "instance_count", None),
            }
        )
    return {
        "name": endpoint.name,
        "kind": type(endpoint).__name__,
        "scoring_uri": endpoint.scoring_uri,
        "swagger_uri": getattr(endpoint, "openapi_uri", None),
        "auth_mode": endpoint.auth_mode,
        "traffic": dict(endpoint.traffic or {}),
        "mirror_traffic": dict(endpoint.mirror_traffic or {}),
        "state": getattr(endpoint, "provisioning_state", None),
        "deployments": deployments,
    }


def tag_model(client: Any, name: str, version: str, tags: dict[str, str]) -> Any:
    """Add ``tags`` to a registered version (existing tags are kept; same keys are overwritten)."""
    model = client.models.get(name=name, version=str(version))
    model.tags = {**(model.tags or {}), **{key: str(value) for key, value in tags.items()}}
    updated = client.models.create_or_update(model)
    log.info("tagged %s:%s with %s", name, version, sorted(tags))
    return updated
