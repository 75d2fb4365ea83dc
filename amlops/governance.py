"""Model governance: where each version is deployed, retiring stale versions, efficacy checks, lifecycle events.

Everything is recorded in the model registry itself, as tags on the model version, so the MLflow UI and Azure ML
studio show the same facts the CLI prints:

``deployment.<target>.<endpoint>``
    The latest record of that version on that endpoint, as JSON: target (``local``/``azure``), stage, endpoint,
    deployment, URL, outcome (``succeeded``, ``failed``, ``rolled-back``, ``undeployed``), traffic share, time
    (UTC), build id when there is one. A version is *live* on an endpoint while its record there says
    ``succeeded`` with traffic other than 0 (and, locally, the endpoint's process still runs it).
``deployments``
    The version's deployment history as a JSON list, oldest first: the latest :data:`HISTORY_LIMIT` records, fewer
    when needed to stay under :data:`TAG_VALUE_BUDGET` characters (older records are dropped; the per-endpoint tags
    always hold the latest state).
``retired``, ``retired_reason``, ``retired_by``, ``retired_at`` (and ``unretired_*``)
    A retired version is refused by every deploy path (:func:`ensure_servable`, called by
    :func:`amlops.serving.deploy.stage_version` and :func:`amlops.azure.build_steps.release`) and by promotion.
``efficacy.last_check``
    The last ``models check`` of the version: status, metrics, data checksum, time.

Events (registered, promoted, retired, unretired, degraded) are appended to ``.mlops/events.jsonl`` and, when
``AMLOPS_EVENTS_COMMAND`` is set, passed as JSON on stdin to that command, once each (:func:`emit`).
"""

from __future__ import annotations

import getpass
import json
import logging
import os
import shlex
import subprocess
import tempfile
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, fields, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from amlops.registry import (
    PRODUCTION_TAG,
    RETIRED_AT_TAG,
    RETIRED_BY_TAG,
    RETIRED_REASON_TAG,
    RETIRED_TAG,
    Registry,
    RetiredVersionError,
    Version,
    VersionNotFoundError,
)
from amlops.settings import LOCAL_ENDPOINT, PRODUCTION_ALIAS, EfficacySettings, EventSettings, ProjectSettings

log = logging.getLogger(__name__)

DEPLOYMENT_TAG_PREFIX = "deployment."
HISTORY_TAG = "deployments"
EFFICACY_TAG = "efficacy.last_check"
UNRETIRED_BY_TAG = "unretired_by"
UNRETIRED_AT_TAG = "unretired_at"
UNRETIRED_REASON_TAG = "unretired_reason"
#: Tags that describe a version's deployments and checks in *its* registry: an import into another drops them.
SOURCE_ONLY_PREFIXES = (DEPLOYMENT_TAG_PREFIX, HISTORY_TAG, "efficacy.")
#: History kept in the ``deployments`` tag: at most this many records...
HISTORY_LIMIT = 20
#: ...and at most this many characters (MLflow 3.15 allows 100,000 per model version tag; older MLflow servers
#: and other registries 5,000: the history stays under the smallest).
TAG_VALUE_BUDGET = 5000
OUTCOMES = ("succeeded", "failed", "rolled-back", "undeployed")
#: Events :func:`emit` sends.
EVENT_TYPES = ("model.registered", "model.promoted", "model.retired", "model.unretired", "model.degraded")
#: CI variables naming who started a build, in order of preference, with the system that sets them.
CI_IDENTITY_VARIABLES = (
    ("BUILD_REQUESTEDFOREMAIL", "Azure DevOps"),
    ("BUILD_REQUESTEDFOR", "Azure DevOps"),
    ("GITHUB_ACTOR", "GitHub Actions"),
)
#: Tags shown as a version's lineage by ``models show``.
LINEAGE_TAGS = (
    "git_commit",
    "git_dirty",
    "data_source",
    "data_sha256",
    "data_rows",
    "train_run_id",
    "pipeline_run_id",
    "build_id",
    "build_url",
    "decision",
    "decision_reasons",
    "replaced_version",
    "imported_from_registry",
    "imported_from_name",
    "imported_from_version",
    "import_archive_sha256",
)

Say = Callable[[str], None]


class GovernanceError(LookupError):
    """A governance action was refused (what to do instead is in the message)."""


def now() -> str:
    """The current UTC time, to the second, ISO 8601."""
    return datetime.now(UTC).isoformat(timespec="seconds")


def who() -> str:
    """Who acts: the CI identity in a pipeline, the login name otherwise."""
    for variable, system in CI_IDENTITY_VARIABLES:
        if os.environ.get(variable):
            return f"{os.environ[variable]} (via {system})"
    try:
        return getpass.getuser()
    except (OSError, KeyError):
        return "unknown"


def build_id() -> str | None:
    """The CI build id (Azure DevOps or GitHub Actions), when running in one."""
    from amlops.steps.register import BUILD_ID_VARIABLES

    return next((os.environ[name] for name in BUILD_ID_VARIABLES if os.environ.get(name)), None)


# --- events -------------------------------------------------------------------------------------------------------


def emit(
    kind: str,
    model: str,
    version: str | None,
    details: dict | None = None,
    *,
    settings: ProjectSettings | None = None,
    registry: str | None = None,
) -> dict:
    """Send one lifecycle event: a line in ``.mlops/events.jsonl``, then the configured command, if any.

    The command (``AMLOPS_EVENTS_COMMAND``) gets the event as JSON on stdin and its type in ``AMLOPS_EVENT_TYPE``;
    its output is logged, and a failure is logged without failing the action that caused the event (the registry
    change has happened: the event log still has it).

    Returns:
        The event.
    """
    settings = settings or ProjectSettings()
    event = {
        "id": uuid.uuid4().hex,
        "type": kind,
        "time": now(),
        "model": model,
        "version": None if version is None else str(version),
        "registry": registry,
        "actor": who(),
        "details": details or {},
    }
    line = json.dumps(event, sort_keys=True, default=str)
    path = settings.events_file
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as sink:
        sink.write(line + "\n")
    log.info("event %s: %s v%s", kind, model, version)
    rules = EventSettings()
    if rules.command:
        _run_event_command(rules, kind, line)
    return event


def _run_event_command(rules: EventSettings, kind: str, line: str) -> None:
    command = shlex.split(rules.command)
    try:
        done = subprocess.run(
            command,
            input=line + "\n",
            text=True,
            capture_output=True,
            timeout=rules.timeout,
            env=os.environ | {"AMLOPS_EVENT_TYPE": kind},
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        log.error("event %s: AMLOPS_EVENTS_COMMAND %s failed: %s", kind, command[0], error)
        return
    for stream in (done.stdout, done.stderr):
        if stream.strip():
            log.debug("event command: %s", stream.strip()[-2000:])
    if done.returncode != 0:
        log.error(
            "event %s: AMLOPS_EVENTS_COMMAND exited with code %d: %s",
            kind,
            done.returncode,
            (done.stderr or done.stdout).strip()[-500:],
        )


def read_events(settings: ProjectSettings | None = None) -> list[dict]:
    """Every event in the local event log, oldest first."""
    path = (settings or ProjectSettings()).events_file
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


# --- deployment records ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DeploymentRecord:
    """What was deployed where, with what outcome (stored on the model version as JSON)."""

    target: str
    endpoint: str
    deployment: str
    url: str | None
    outcome: str
    at: str
    stage: str | None = None
    traffic: int | None = None
    build_id: str | None = None
    detail: str | None = None
    config: str | None = None

    @property
    def live(self) -> bool:
        """Whether the record says the version serves (some of) the endpoint's traffic."""
        return self.outcome == "succeeded" and self.traffic != 0

    @property
    def tag(self) -> str:
        """The per-endpoint tag this record is stored under."""
        return deployment_tag(self.target, self.endpoint)

    def as_dict(self) -> dict[str, Any]:
        """The record without empty fields."""
        return {k: v for k, v in asdict(self).items() if v is not None}

    @classmethod
    def from_dict(cls, value: dict[str, Any]) -> DeploymentRecord:
        """Read a stored record (unknown keys are ignored)."""
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in value.items() if k in known})


def deployment_tag(target: str, endpoint: str) -> str:
    """``deployment.<target>.<endpoint>``."""
    return f"{DEPLOYMENT_TAG_PREFIX}{target}.{endpoint}"


def _parse(value: str) -> Any:
    try:
        return json.loads(value)
    except (TypeError, ValueError):
        return None


def endpoint_records(version: Version) -> list[DeploymentRecord]:
    """The latest record per endpoint, newest first."""
    records = []
    for key, value in version.tags.items():
        parsed = _parse(value) if key.startswith(DEPLOYMENT_TAG_PREFIX) else None
        if isinstance(parsed, dict):
            try:
                records.append(DeploymentRecord.from_dict(parsed))
            except TypeError:
                log.warning("%s v%s: unreadable deployment tag %s", version.name, version.version, key)
    return sorted(records, key=lambda r: r.at, reverse=True)


def history(version: Version) -> list[DeploymentRecord]:
    """The recorded deployment history (latest :data:`HISTORY_LIMIT`), oldest first."""
    parsed = _parse(version.tags.get(HISTORY_TAG, "[]"))
    return [DeploymentRecord.from_dict(item) for item in parsed or [] if isinstance(item, dict)]


def _history_value(records: list[DeploymentRecord]) -> str:
    kept = [r.as_dict() for r in records[-HISTORY_LIMIT:]]
    value = json.dumps(kept, separators=(",", ":"))
    while len(value) > TAG_VALUE_BUDGET and kept:
        kept.pop(0)
        value = json.dumps(kept, separators=(",", ":"))
    return value


def record_deployment(registry: Any, version: str, record: DeploymentRecord) -> bool:
    """Record a deployment outcome on a version (per-endpoint tag and history).

    Best effort: the deployment has already happened (or failed), so a registry that cannot be written is logged
    as an error and ``False`` returned, never raised.
    """
    if record.outcome not in OUTCOMES:
        raise ValueError(f"outcome must be one of {OUTCOMES}, got {record.outcome!r}")
    if record.detail and len(record.detail) > 300:
        record = DeploymentRecord(**{**asdict(record), "detail": record.detail[:297] + "..."})
    try:
        current = registry.get(version)
        tags = {
            record.tag: json.dumps(record.as_dict(), separators=(",", ":")),
            HISTORY_TAG: _history_value([*history(current), record]),
        }
        registry.set_tags(current.version, tags)
    except Exception as error:  # noqa: BLE001 - the deployment stands; a missing record must not undo it
        log.error(
            "could not record %s of %s v%s on %s in the registry: %s",
            record.outcome,
            getattr(registry, "name", "?"),
            version,
            record.endpoint,
            error,
        )
        return False
    log.info("recorded on %s v%s: %s on %s %s", registry.name, version, record.outcome, record.target, record.endpoint)
    return True


# --- retirement ------------------------------------------------------------------------------------------------------


def ensure_servable(version: Version) -> Version:
    """Refuse a retired version; the one check every deploy path makes.

    Raises:
        RetiredVersionError: with who retired it, when and why.
    """
    if version.retired:
        raise RetiredVersionError(version)
    return version


def retirement(version: Version) -> dict[str, str] | None:
    """Who retired the version, when and why; ``None`` when it is not retired."""
    if not version.retired:
        return None
    tags = version.tags
    return {
        "reason": tags.get(RETIRED_REASON_TAG, ""),
        "by": tags.get(RETIRED_BY_TAG, ""),
        "at": tags.get(RETIRED_AT_TAG, ""),
    }


@dataclass
class RetireResult:
    """What :func:`retire` did."""

    model: str
    version: str
    reason: str
    by: str
    at: str
    promoted: str | None = None
    replaced_by: str | None = None
    live: list[DeploymentRecord] = field(default_factory=list)
    replaced: list[DeploymentRecord] = field(default_factory=list)

    @property
    def still_live(self) -> list[DeploymentRecord]:
        """Where the retired version still serves (live and not replaced)."""
        done = {(r.target, r.endpoint) for r in self.replaced}
        return [r for r in self.live if (r.target, r.endpoint) not in done]


def retire(
    registry: Any,
    version: str,
    reason: str,
    *,
    replacement: str | None = None,
    replace: bool = False,
    config: Path | None = None,
    settings: ProjectSettings | None = None,
    client: Any = None,
    say: Say = log.info,
) -> RetireResult:
    """Mark a version as not to be served, and optionally replace it where it is live.

    Args:
        registry: The version's registry (:class:`~amlops.registry.Registry` or :class:`AzureRegistry`).
        version: The version to retire.
        reason: Why; recorded and repeated in every refusal.
        replacement: Required when ``version`` is in production: the version that becomes production instead
            (promoted through ``registry.promote``; it must exist and not be retired).
        replace: Redeploy the production version wherever the retired one is live, through the normal deploy path
            (new endpoint started and smoke-tested before the old one stops; Azure: a blue/green release).
        config: Local deployment config for the replacements (default: the one each was deployed with).
        settings: Project settings.
        client: An ``MLClient`` for Azure deployments (with :class:`AzureRegistry`).
        say: Progress lines.

    Raises:
        GovernanceError: already retired, production without a valid replacement, nothing to replace with.
    """
    settings = settings or ProjectSettings()
    if not reason or not reason.strip():
        raise GovernanceError("a retirement needs a reason (--reason)")
    target = registry.get(version)
    if target.retired:
        info = retirement(target)
        raise GovernanceError(
            f"{target.name} v{target.version} is already retired ({info['reason']}; by {info['by']} at {info['at']})"
        )
    production = registry.production()
    is_production = production is not None and production.version == target.version
    successor = None
    if is_production:
        if not replacement:
            raise GovernanceError(
                f"{target.name} v{target.version} is the production version: name the version that replaces it "
                "with --replacement VERSION (it becomes production)"
            )
        successor = registry.get(replacement)
        if successor.version == target.version:
            raise GovernanceError(f"v{target.version} cannot replace itself")
        ensure_servable(successor)
    elif replacement:
        raise GovernanceError(
            f"{target.name} v{target.version} is not in production (v{production.version if production else 'none'} "
            "is): --replacement is only for retiring the production version; --replace redeploys production"
        )
    live = live_deployments(registry, target, settings=settings, client=client)
    serving = successor or production
    if replace and live and serving is None:
        raise GovernanceError(f"no version of {target.name} is in production to replace v{target.version} with")

    if successor is not None:
        registry.promote(successor.version)
        say(f"{target.name} v{successor.version} is now production (replaces v{target.version})")
    result = RetireResult(
        target.name, target.version, reason.strip(), who(), now(), promoted=successor and successor.version
    )
    registry.set_tags(
        target.version,
        {RETIRED_TAG: "true", RETIRED_REASON_TAG: result.reason, RETIRED_BY_TAG: result.by, RETIRED_AT_TAG: result.at},
    )
    say(f"{target.name} v{target.version} retired by {result.by}: {result.reason}")
    result.live = live
    emit(
        "model.retired",
        target.name,
        target.version,
        {
            "reason": result.reason,
            "replacement": result.promoted,
            "live": [r.as_dict() for r in live],
        },
        settings=settings,
        registry=registry.uri,
    )
    if replace and live:
        result.replaced_by = serving.version
        for record in live:
            result.replaced.append(
                _replace(registry, record, serving.version, config=config, settings=settings, client=client, say=say)
            )
    return result


def _replace(
    registry: Any,
    record: DeploymentRecord,
    version: str,
    *,
    config: Path | None,
    settings: ProjectSettings,
    client: Any,
    say: Say,
) -> DeploymentRecord:
    """Serve ``version`` where ``record`` says a retired version is live, through the normal deploy path."""
    if record.target == "local":
        chosen = config or (Path(record.config) if record.config and Path(record.config).is_file() else None)
        say(f"replacing it on local endpoint {record.endpoint} by v{version}")
        state, _ = deploy_local(version, name=record.endpoint, config=chosen, settings=settings, registry=registry)
        return _local_record(state, "succeeded", config=chosen)
    if client is None:
        raise GovernanceError(
            f"the retired version is live on Azure endpoint {record.endpoint}: replace it there with --target azure"
        )
    from amlops.azure import build_steps

    stage = record.stage or _stage_of(record.endpoint, settings)
    say(f"replacing it on Azure endpoint {record.endpoint} ({stage}) by v{version}")
    result = build_steps.release(stage, version=version, client=client, say=say)
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


def _stage_of(endpoint: str, settings: ProjectSettings) -> str:
    from amlops.azure.settings import STAGES, AzureSettings

    for stage in STAGES:
        if AzureSettings().endpoint_name(stage, settings) == endpoint:
            return stage
    raise GovernanceError(f"endpoint {endpoint} is not a release stage's endpoint ({sorted(STAGES)})")


def unretire(
    registry: Any, version: str, reason: str | None = None, *, settings: ProjectSettings | None = None
) -> dict:
    """Undo a retirement (recorded with who and when; the last retirement's tags stay for the record)."""
    target = registry.get(version)
    if not target.retired:
        raise GovernanceError(f"{target.name} v{target.version} is not retired")
    record = {UNRETIRED_BY_TAG: who(), UNRETIRED_AT_TAG: now(), UNRETIRED_REASON_TAG: reason or ""}
    registry.set_tags(target.version, {RETIRED_TAG: "false", **{k: v for k, v in record.items() if v}})
    emit(
        "model.unretired",
        target.name,
        target.version,
        {"reason": reason, "was": retirement(target)},
        settings=settings,
        registry=registry.uri,
    )
    return record


# --- local endpoints ---------------------------------------------------------------------------------------------


def _registry_for(registry: Any, model_name: str) -> Any:
    """The registry holding ``model_name`` (another model may have served the endpoint before)."""
    if registry.name == model_name or not isinstance(registry, Registry):
        return registry
    return Registry(registry.settings.model_copy(update={"model_name": model_name}))


def _local_record(
    state: Any,
    outcome: str,
    *,
    detail: str | None = None,
    config: Path | None = None,
) -> DeploymentRecord:
    return DeploymentRecord(
        target="local",
        endpoint=state.name,
        deployment=Path(state.deployment_dir).name,
        url=state.scoring_uri,
        outcome=outcome,
        at=now(),
        stage="local",
        build_id=build_id(),
        detail=detail,
        config=str(Path(config).resolve()) if config else None,
    )


def record_local(
    state: Any,
    outcome: str,
    *,
    registry: Any = None,
    settings: ProjectSettings | None = None,
    detail: str | None = None,
    config: Path | None = None,
) -> bool:
    """Record a local endpoint's outcome on the version it serves (best effort)."""
    settings = settings or ProjectSettings()
    registry = _registry_for(registry or Registry(settings), state.model_name)
    record = _local_record(state, outcome, detail=detail, config=config)
    return record_deployment(registry, state.model_version, record)


def running_local(settings: ProjectSettings | None = None, name: str = LOCAL_ENDPOINT) -> Any:
    """The state of a running local endpoint, or ``None``."""
    from amlops.serving.local import read_state

    try:
        return read_state((settings or ProjectSettings()).endpoints_dir, name)
    except LookupError:
        return None


def local_endpoints(settings: ProjectSettings | None = None) -> list[Any]:
    """Every running local endpoint (state files of stopped ones are cleaned up on the way)."""
    settings = settings or ProjectSettings()
    folder = settings.endpoints_dir
    found = []
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        state = running_local(settings, path.stem)
        if state is not None:
            found.append(state)
    return found


def _port(url: str) -> int:
    return int(url.rsplit(":", 1)[1].split("/")[0])


def deploy_local(
    version: str | None = None,
    *,
    name: str = LOCAL_ENDPOINT,
    config: Path | None = None,
    port: int | None = None,
    settings: ProjectSettings | None = None,
    registry: Any = None,
) -> tuple[Any, Any]:
    """Deploy a version (production by default) to a local endpoint left running, smoke-tested, recorded.

    A version already running under ``name`` keeps serving until the new one is healthy and passed its smoke test
    (checked on the new server's direct port while both share the public one), then it is stopped; if the new one
    fails, it is removed and the old one keeps the endpoint. Each outcome is recorded on the version it concerns.
    A retired version is refused before anything stops.

    Returns:
        The new endpoint's :class:`~amlops.serving.local.EndpointState` and its smoke test result.
    """
    from amlops.serving.deploy import LOCAL_DEPLOYMENT_CONFIG_FILE, stage_version
    from amlops.serving.local import LocalEndpoint, stop_process_group, stop_recorded
    from amlops.serving.smoke import smoke_local

    settings = settings or ProjectSettings()
    registry = registry or Registry(settings)
    used = Path(config or settings.root / LOCAL_DEPLOYMENT_CONFIG_FILE)
    old = running_local(settings, name)
    # Stage beside the running deployment (two slots, blue/green), never over it.
    slot = f"{name}-b" if old is not None and Path(old.deployment_dir).name == name else name
    staged, deployment = stage_version(
        version, settings=settings, registry=registry, deployment_config=config, name=slot
    )
    if port is not None:
        deployment = deployment.model_copy(update={"port": port})
    new = f"v{staged.model_version}"
    # Servers share the public port (SO_REUSEPORT) and answer checks on their own direct port; one recorded by an
    # older version of this code has no direct port and cannot share: it is stopped first.
    same_port = old is not None and deployment.port != 0 and deployment.port == _port(old.url)
    blocking = same_port and not old.direct_url
    endpoint = LocalEndpoint(
        staged, deployment, settings.endpoints_dir, name=name, share_port=same_port and not blocking
    )
    if blocking:
        log.info(
            "endpoint %s: v%s holds port %d; stopping it before %s starts", name, old.model_version, _port(old.url), new
        )
        stop_recorded(settings.endpoints_dir, name)
        record_local(
            old, "undeployed", registry=registry, settings=settings, detail=f"stopped to free its port for {new}"
        )
    try:
        state = endpoint.start(record=False)
        smoke = smoke_local(replace(state, scoring_uri=f"{state.direct_url}/score"), settings.data_snapshot)
    except BaseException as error:
        endpoint.stop()
        if endpoint.state is not None:
            detail = f"{type(error).__name__}: {error}"
            record_local(endpoint.state, "failed", registry=registry, settings=settings, detail=detail, config=used)
        if old is not None and not blocking:
            log.error("endpoint %s: %s failed; v%s keeps serving at %s", name, new, old.model_version, old.url)
        elif old is not None:
            log.error(
                "endpoint %s: %s failed and v%s was stopped for its port: nothing serves", name, new, old.model_version
            )
        raise
    endpoint.record()
    if old is not None and not blocking:
        stop_process_group(old.pid)
        record_local(
            old, "undeployed", registry=registry, settings=settings, detail=f"replaced by {new} at {state.url}"
        )
        log.info("endpoint %s: v%s stopped; %s serves", name, old.model_version, new)
    record_local(state, "succeeded", registry=registry, settings=settings, config=used)
    return state, smoke


def undeploy_local(name: str = LOCAL_ENDPOINT, *, settings: ProjectSettings | None = None, registry: Any = None) -> Any:
    """Stop a local endpoint and record it on the version it served; ``None`` when none was running."""
    from amlops.serving.local import stop_recorded

    settings = settings or ProjectSettings()
    state = running_local(settings, name)
    if state is None:
        return None
    stop_recorded(settings.endpoints_dir, name)
    record_local(state, "undeployed", registry=registry, settings=settings)
    return state


@contextmanager
def serving_local(
    endpoint: Any,
    *,
    settings: ProjectSettings | None = None,
    registry: Any = None,
    config: Path | None = None,
    smoke: bool = False,
) -> Iterator[tuple[Any, Any]]:
    """Run an unstarted :class:`~amlops.serving.local.LocalEndpoint` for the ``with`` block, recording it.

    Yields:
        The endpoint state and the smoke test result (``None`` unless ``smoke``).
    """
    from amlops.serving.smoke import smoke_local

    settings = settings or ProjectSettings()
    try:
        state = endpoint.start()
        result = smoke_local(state, settings.data_snapshot) if smoke else None
    except BaseException as error:
        endpoint.stop()
        if endpoint.state is not None:
            record_local(
                endpoint.state,
                "failed",
                registry=registry,
                settings=settings,
                detail=f"{type(error).__name__}: {error}",
                config=config,
            )
        raise
    record_local(state, "succeeded", registry=registry, settings=settings, config=config)
    try:
        yield state, result
    finally:
        endpoint.stop()
        record_local(state, "undeployed", registry=registry, settings=settings, config=config)


# --- where is each version live ---------------------------------------------------------------------------------


def live_deployments(
    registry: Any, version: Version, *, settings: ProjectSettings | None = None, client: Any = None
) -> list[DeploymentRecord]:
    """Where ``version`` serves now.

    Locally, the running endpoints are the truth (a record of a process that is gone is not live; a running
    endpoint without a record is). On Azure, the records; checked against the endpoint's traffic when ``client``
    is given.
    """
    settings = settings or ProjectSettings()
    records = {(r.target, r.endpoint): r for r in endpoint_records(version)}
    live = []
    if isinstance(registry, Registry):
        for state in local_endpoints(settings):
            if (state.model_name, state.model_version) == (version.name, version.version):
                recorded = records.get(("local", state.name))
                live.append(recorded if recorded and recorded.live else _local_record(state, "succeeded"))
    for record in records.values():
        if record.target == "azure" and record.live:
            if client is not None:
                serving = azure_serving(client, record.endpoint)
                share = serving.get(record.deployment, (None, None, 0))[2]
                if serving.get(record.deployment, (None, None))[:2] != (version.name, version.version) or share <= 0:
                    continue
            live.append(record)
    return live


def azure_serving(client: Any, endpoint_name: str) -> dict[str, tuple[str, str, int]]:
    """``{deployment: (model name, version, traffic %)}`` of an Azure endpoint; empty if it does not exist."""
    from types import SimpleNamespace

    from amlops.azure import operations

    try:
        endpoint = client.online_endpoints.get(endpoint_name)
        deployments = list(client.online_deployments.list(endpoint_name))
    except Exception as error:
        if operations._is_missing(error):
            return {}
        raise
    traffic = {name: int(share) for name, share in (endpoint.traffic or {}).items()}
    found = {}
    for item in deployments:
        try:
            model, version = operations.model_of(SimpleNamespace(name=item.name, model=getattr(item, "model", None)))
        except operations.AzureOperationError:
            continue
        found[item.name] = (model, version, traffic.get(item.name, 0))
    return found


def endpoints(settings: ProjectSettings | None = None, registry: Any = None) -> list[dict[str, Any]]:
    """Every local endpoint with the version it serves: the running ones, and recorded ones no longer running."""
    settings = settings or ProjectSettings()
    registry = registry or Registry(settings)
    rows = []
    running = local_endpoints(settings)
    for state in running:
        try:
            retired = _registry_for(registry, state.model_name).get(state.model_version).retired
        except LookupError:
            retired = False
        rows.append(
            {
                "target": "local",
                "endpoint": state.name,
                "deployment": Path(state.deployment_dir).name,
                "model": state.model_name,
                "version": state.model_version,
                "status": "live",
                "traffic": 100,
                "url": state.scoring_uri,
                "since": datetime.fromtimestamp(state.started_at, UTC).isoformat(timespec="seconds"),
                "retired": retired,
            }
        )
    names = {state.name for state in running}
    for version in registry.versions():
        for record in endpoint_records(version):
            if record.target == "local" and record.live and record.endpoint not in names:
                rows.append(
                    {
                        "target": "local",
                        "endpoint": record.endpoint,
                        "deployment": record.deployment,
                        "model": version.name,
                        "version": version.version,
                        "status": "not running (recorded live)",
                        "traffic": 0,
                        "url": record.url,
                        "since": record.at,
                        "retired": version.retired,
                    }
                )
    return rows


def azure_endpoints(client: Any, registry: Any = None, settings: ProjectSettings | None = None) -> list[dict[str, Any]]:
    """Each release stage's Azure endpoint, its deployments, their traffic and the version each serves."""
    from amlops.azure import operations
    from amlops.azure.settings import STAGES, AzureSettings

    settings = settings or ProjectSettings()
    registry = registry or AzureRegistry(client, settings=settings)
    rows = []
    for stage in STAGES.values():
        name = AzureSettings().endpoint_name(stage.name, settings)
        serving = azure_serving(client, name)
        if not serving:
            rows.append({"target": "azure", "stage": stage.name, "endpoint": name, "status": "no deployments"})
            continue
        url = operations.endpoint_details(client, name)["scoring_uri"]
        for deployment, (model, version, share) in sorted(serving.items(), key=lambda item: -item[1][2]):
            try:
                retired = registry.get(version).retired if model == registry.name else False
            except LookupError:
                retired = False
            rows.append(
                {
                    "target": "azure",
                    "stage": stage.name,
                    "endpoint": name,
                    "deployment": deployment,
                    "model": model,
                    "version": version,
                    "status": "live" if share > 0 else "standby (0% traffic)",
                    "traffic": share,
                    "url": url,
                    "retired": retired,
                }
            )
    return rows


def render_endpoints(rows: list[dict[str, Any]]) -> str:
    """``endpoints list`` as a table."""
    if not rows:
        return "no endpoints: deploy one with `python -m amlops deploy` (or `azure deploy`)\n"
    lines = [f"{'endpoint':24} {'target':6} {'deployment':16} {'version':>7} {'traffic':>7}  {'status':28} url"]
    for row in rows:
        version = f"{row['version']}{' RETIRED' if row.get('retired') else ''}" if row.get("version") else "-"
        traffic = f"{row['traffic']}%" if row.get("traffic") is not None else "-"
        lines.append(
            f"{row['endpoint']:24} {row['target']:6} {row.get('deployment', '-'):16} {version:>7} {traffic:>7}  "
            f"{row['status']:28} {row.get('url') or '-'}"
        )
    return "\n".join(lines) + "\n"


# --- models show ---------------------------------------------------------------------------------------------------


def resolve(registry: Any, version: str | None) -> Version:
    """A version by number, or production for ``None``/``production``."""
    if version in (None, "", PRODUCTION_ALIAS):
        current = registry.production()
        if current is None:
            raise LookupError(f"no version of {registry.name} is in production")
        return current
    return registry.get(version)


def describe(
    registry: Any, version: Version, *, settings: ProjectSettings | None = None, client: Any = None
) -> dict[str, Any]:
    """A version's metrics, lineage, retirement, last efficacy check and deployments."""
    settings = settings or ProjectSettings()
    tags = version.tags
    live = live_deployments(registry, version, settings=settings, client=client)
    live_keys = {(r.target, r.endpoint) for r in live}
    recorded = [
        {**r.as_dict(), "status": "live" if (r.target, r.endpoint) in live_keys else _status(r)}
        for r in endpoint_records(version)
    ]
    recorded += [
        {**r.as_dict(), "status": "live (unrecorded)"}
        for r in live
        if (r.target, r.endpoint) not in {(x["target"], x["endpoint"]) for x in recorded}
    ]
    return {
        "name": version.name,
        "version": version.version,
        "production": version.in_production,
        "retired": retirement(version),
        "registered_at": datetime.fromtimestamp(version.created_ms / 1000, UTC).isoformat(timespec="seconds")
        if version.created_ms
        else None,
        "run_id": version.run_id,
        "source": version.source,
        "metrics": version.metrics,
        "params": {k.removeprefix("param."): v for k, v in tags.items() if k.startswith("param.")},
        "lineage": {k: tags[k] for k in LINEAGE_TAGS if tags.get(k)},
        "efficacy": _parse(tags[EFFICACY_TAG]) if EFFICACY_TAG in tags else None,
        "live": [r.as_dict() for r in live],
        "deployments": recorded,
        "history": [r.as_dict() for r in history(version)],
    }


def _status(record: DeploymentRecord) -> str:
    if record.live:
        return "not running (recorded live)" if record.target == "local" else "live (recorded)"
    if record.outcome == "succeeded":
        return "standby (0% traffic)"
    return record.outcome


def render_description(described: dict[str, Any]) -> str:
    """``models show`` as text."""
    d = described
    marks = [m for m, on in (("production", d["production"]), ("RETIRED", d["retired"])) if on]
    lines = [f"{d['name']} v{d['version']}" + (f"  ({', '.join(marks)})" if marks else "")]
    if d["retired"]:
        r = d["retired"]
        lines.append(f"retired      {r['at']} by {r['by']}: {r['reason']}")
    lines.append(f"registered   {d['registered_at'] or '?'}  run {d['run_id'] or '-'}")
    lines.append(f"source       {d['source']}")
    metrics = "  ".join(f"{k} {v:.4g}" for k, v in sorted(d["metrics"].items())) or "none recorded"
    lines.append(f"metrics      {metrics}  (holdout, at registration)")
    if d["params"]:
        lines.append("params       " + "  ".join(f"{k}={v}" for k, v in sorted(d["params"].items())))
    if d["efficacy"]:
        e = d["efficacy"]
        measured = "  ".join(f"{k} {v:.4g}" for k, v in sorted(e.get("metrics", {}).items()))
        lines.append(
            f"last check   {e.get('checked_at')}: {str(e.get('status', '?')).upper()}  {measured}  "
            f"on {e.get('data')} ({e.get('rows')} rows)"
        )
    lines.append("lineage")
    lines += [f"  {k:22} {v}" for k, v in d["lineage"].items()] or ["  (none recorded)"]
    lines.append("live deployments")
    lines += [
        f"  {r['target']:6} {r['endpoint']:24} {r['deployment']:16} {r.get('url') or '-'}  since {r['at']}"
        + (f"  build {r['build_id']}" if r.get("build_id") else "")
        for r in d["live"]
    ] or ["  none"]
    others = [r for r in d["deployments"] if not str(r["status"]).startswith("live")]
    if others:
        lines.append("other endpoints (latest record)")
        lines += [
            f"  {r['target']:6} {r['endpoint']:24} {r['deployment']:16} {r['status']:12} {r['at']}" for r in others
        ]
    if d["history"]:
        lines.append(
            f"history      {len(d['history'])} records (latest {HISTORY_LIMIT} kept in the '{HISTORY_TAG}' tag)"
        )
        for r in d["history"][-5:]:
            line = f"  {r['at']}  {r['outcome']:11} {r['target']:6} {r['endpoint']:24} {r['deployment']}"
            lines.append(line + (f"  ({r['detail']})" if r.get("detail") else ""))
    return "\n".join(lines) + "\n"


# --- efficacy -----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class EfficacyReport:
    """The production model measured on newer labelled data."""

    status: str
    model: str
    version: str
    data: str
    data_sha256: str
    rows: int
    metrics: dict[str, float]
    recorded: dict[str, float]
    change: dict[str, float]
    thresholds: dict[str, Any]
    reasons: list[str]
    checked_at: str

    @property
    def degraded(self) -> bool:
        """Whether any threshold was crossed."""
        return self.status == "degraded"


def check_efficacy(
    registry: Any,
    data_path: Path,
    *,
    rules: EfficacySettings | None = None,
    settings: ProjectSettings | None = None,
) -> EfficacyReport:
    """Score the production model on a newer labelled CSV with the gate's metrics and apply the thresholds.

    The CSV is validated against the data schema first. ``degraded`` when RMSE is above ``max_rmse``, R² below
    ``min_r2``, or RMSE or MAE worse than recorded at registration by more than ``max_relative_degradation``. The
    result is recorded on the version (``efficacy.last_check``); a ``degraded`` result emits ``model.degraded``.
    """
    from amlops import data
    from amlops import model as model_lib

    rules = rules or EfficacySettings()
    settings = settings or ProjectSettings()
    current = registry.production()
    if current is None:
        raise LookupError(f"no version of {registry.name} is in production: nothing to check")
    path = Path(data_path)
    frame = data.validate(data.load_csv(path), min_rows=rules.min_rows, source=str(path))
    with tempfile.TemporaryDirectory(prefix="amlops-check-") as scratch:
        estimator = model_lib.load_mlflow_model(registry.download(current.version, Path(scratch) / "model"))
    measured = model_lib.metrics(estimator, frame)
    recorded = current.metrics
    reasons = []
    if measured["rmse"] > rules.max_rmse:
        reasons.append(f"rmse {measured['rmse']:.3f} is above the ceiling {rules.max_rmse}")
    if measured["r2"] < rules.min_r2:
        reasons.append(f"r2 {measured['r2']:.4f} is below the floor {rules.min_r2}")
    change = {}
    for name in ("rmse", "mae"):
        if recorded.get(name):
            change[name] = (measured[name] - recorded[name]) / recorded[name]
            if change[name] > rules.max_relative_degradation:
                reasons.append(
                    f"{name} {measured[name]:.3f} is {change[name]:.1%} worse than the {recorded[name]:.3f} "
                    f"recorded at registration (allowed: {rules.max_relative_degradation:.0%})"
                )
    if "r2" in recorded:
        change["r2"] = measured["r2"] - recorded["r2"]
    report = EfficacyReport(
        status="degraded" if reasons else "ok",
        model=current.name,
        version=current.version,
        data=str(path),
        data_sha256=data.sha256_file(path),
        rows=len(frame),
        metrics=measured,
        recorded=recorded,
        change=change,
        thresholds=rules.model_dump(),
        reasons=reasons,
        checked_at=now(),
    )
    summary = {
        "status": report.status,
        "checked_at": report.checked_at,
        "data": path.name,
        "data_sha256": report.data_sha256,
        "rows": report.rows,
        "metrics": {k: round(v, 6) for k, v in measured.items()},
    }
    try:
        registry.set_tags(current.version, {EFFICACY_TAG: json.dumps(summary, separators=(",", ":"))})
    except Exception as error:  # noqa: BLE001 - the check's answer stands even if the registry cannot record it
        log.error("could not record the check on %s v%s: %s", current.name, current.version, error)
    if report.degraded:
        emit(
            "model.degraded",
            current.name,
            current.version,
            {**summary, "recorded": recorded, "reasons": reasons},
            settings=settings,
            registry=registry.uri,
        )
    return report


def render_report(report: EfficacyReport) -> str:
    """``models check`` as text: the status, then the numbers."""
    lines = [f"{report.status}: {report.model} v{report.version} on {report.data} ({report.rows} rows)"]
    for name in ("rmse", "mae", "r2"):
        recorded = report.recorded.get(name)
        versus = f"  (at registration {recorded:.4f}" if recorded is not None else "  (nothing recorded"
        if name in report.change:
            change = report.change[name]
            versus += f", {change:+.1%})" if name != "r2" else f", {change:+.4f})"
        else:
            versus += ")"
        lines.append(f"  {name:5} {report.metrics[name]:10.4f}{versus}")
    t = report.thresholds
    lines.append(
        f"  thresholds: rmse <= {t['max_rmse']}, r2 >= {t['min_r2']}, rmse/mae at most "
        f"{t['max_relative_degradation']:.0%} worse than at registration (AMLOPS_EFFICACY_*)"
    )
    lines += [f"  - {reason}" for reason in report.reasons]
    return "\n".join(lines) + "\n"


def retrain(data_path: Path, *, target: str = "local", client: Any = None) -> dict[str, Any]:
    """Start the training pipeline on ``data_path`` (the gate then decides, as in any run).

    Locally the pipeline registers and promotes a better candidate; on Azure it runs as a pipeline job whose
    register step does not promote (the release pipeline promotes after approval).
    """
    if target == "azure":
        from amlops.azure import build_steps

        outcome = build_steps.train(client=client, data=Path(data_path))
    else:
        from amlops import pipeline

        result = pipeline.run(Path(data_path))
        outcome = {"pipeline_run_id": result.run_id, **result.registration}
    return {
        key: outcome.get(key)
        for key in ("pipeline_run_id", "outcome", "reasons", "registered_version", "production_version")
    }


# --- the Azure ML registry --------------------------------------------------------------------------------------


class AzureRegistry:
    """The workspace's model registry (``MLClient.models``), with the ``Registry`` methods governance uses.

    The same tags, the same production marker (the ``production`` tag), the same refusals as locally.
    """

    def __init__(self, client: Any, name: str | None = None, settings: ProjectSettings | None = None):
        self.client = client
        self.settings = settings or ProjectSettings()
        self.name = name or self.settings.model_name

    @property
    def uri(self) -> str:
        """The workspace, as events name the registry."""
        return f"azureml://workspaces/{getattr(self.client, 'workspace_name', None) or '?'}"

    def get(self, version: str) -> Version:
        """One version (tolerates model entities without tags)."""
        from amlops.azure import operations

        try:
            model = self.client.models.get(name=self.name, version=str(version))
        except Exception as error:
            if operations._is_missing(error):
                raise VersionNotFoundError(f"{self.name} has no version {version!r} in the workspace") from None
            raise
        tags = {key: str(value) for key, value in (getattr(model, "tags", None) or {}).items()}
        return Version(
            name=getattr(model, "name", None) or self.name,
            version=str(getattr(model, "version", version)),
            run_id=getattr(model, "job_name", None),
            source=str(getattr(model, "path", "") or ""),
            tags=tags,
            aliases=(PRODUCTION_ALIAS,) if tags.get(PRODUCTION_TAG) == "true" else (),
        )

    def versions(self) -> list[Version]:
        """Every version, newest first."""
        from amlops.azure import operations

        return operations.model_versions(self.client, self.name)

    def production(self) -> Version | None:
        """The version tagged ``production=true``."""
        from amlops.azure import operations

        return operations.production_version(self.client, self.name)

    def set_tags(self, version: str, tags: dict[str, str]) -> None:
        """Add or replace tags on a version."""
        from amlops.azure import build_steps

        build_steps.tag_model(version, tags, client=self.client, model_name=self.name)

    def promote(self, version: str, say: Say = log.info) -> None:
        """Move the production marker (refused for a retired version) and emit ``model.promoted``."""
        from amlops.azure import operations

        target = ensure_servable(self.get(version))
        previous = self.production()
        operations.promote(self.client, self.name, target.version, say=say)
        if previous is None or previous.version != target.version:
            emit(
                "model.promoted",
                self.name,
                target.version,
                {"previous_version": previous.version if previous else None},
                settings=self.settings,
                registry=self.uri,
            )

    def download(self, version: str, dest: Path) -> Path:
        """Copy a version's MLflow model folder to ``dest`` (replaced if it exists) and return it, as locally."""
        import shutil
        import tempfile

        from amlops.azure import operations

        dest = Path(dest)
        with tempfile.TemporaryDirectory() as scratch:
            folder = operations.download_model(self.client, self.name, str(version), Path(scratch))
            shutil.rmtree(dest, ignore_errors=True)
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(folder, dest)
        return dest

    def register_folder(self, folder: Path, tags: dict[str, str], description: str = "") -> Version:
        """Register an MLflow model folder that no job of this workspace produced (an import)."""
        from amlops.azure import operations

        created = operations.register_model_folder(self.client, self.name, Path(folder), tags, description)
        return operations.as_version(created)


def record_release(
    registry: AzureRegistry,
    version: str,
    *,
    stage: str,
    endpoint: str,
    deployment: str,
    before: dict[str, tuple[str, str, int]],
    result: Any = None,
    error: BaseException | None = None,
) -> None:
    """Record an Azure release on the versions it touched: the new one, and the ones it replaced or kept."""
    if error is not None:
        detail = f"{type(error).__name__}: {' '.join(str(error).split())}"
        record_deployment(
            registry,
            version,
            DeploymentRecord("azure", endpoint, deployment, None, "failed", now(), stage, 0, build_id(), detail),
        )
        return
    for old in [*result.deleted, *(name for name in result.previous if name not in result.deleted)]:
        model, old_version, _ = before.get(old, (None, None, 0))
        if model != registry.name:
            continue
        deleted = old in result.deleted
        record_deployment(
            registry,
            old_version,
            DeploymentRecord(
                "azure",
                endpoint,
                old,
                result.scoring_uri,
                "undeployed" if deleted else "succeeded",
                now(),
                stage,
                0 if deleted else int(result.traffic.get(old, 0)),
                build_id(),
                f"{'deleted' if deleted else 'kept for rollback'}: {deployment} (v{version}) took its traffic",
            ),
        )
    record_deployment(
        registry,
        version,
        DeploymentRecord(
            "azure",
            endpoint,
            deployment,
            result.scoring_uri,
            "succeeded",
            now(),
            stage,
            int(result.traffic.get(deployment, 0)),
            build_id(),
            f"traffic in steps: {' → '.join(f'{share}%' for share in result.traffic_steps)}"
            if len(result.traffic_steps) > 1
            else None,
        ),
    )


def record_rollback(
    registry: AzureRegistry,
    *,
    stage: str,
    endpoint: str,
    url: str | None,
    target: str,
    before: dict[str, tuple[str, str, int]],
) -> None:
    """Record a rollback: ``rolled-back`` on what served before, ``succeeded`` (100%) on what serves now."""
    for name, (model, version, share) in before.items():
        if name != target and share > 0 and model == registry.name:
            record_deployment(
                registry,
                version,
                DeploymentRecord(
                    "azure",
                    endpoint,
                    name,
                    url,
                    "rolled-back",
                    now(),
                    stage,
                    0,
                    build_id(),
                    f"traffic back to {target}",
                ),
            )
    model, version, _ = before.get(target, (None, None, 0))
    if model == registry.name:
        record_deployment(
            registry,
            version,
            DeploymentRecord(
                "azure", endpoint, target, url, "succeeded", now(), stage, 100, build_id(), "rollback target"
            ),
        )


def record_cleanup(
    registry: AzureRegistry,
    *,
    stage: str,
    endpoint: str,
    before: dict[str, tuple[str, str, int]],
    deleted: list[str],
) -> None:
    """Record ``undeployed`` on the versions whose idle (0%) deployments were deleted (``azure cleanup``).

    ``before`` is :func:`azure_serving` read before the deletion.
    """
    for name in deleted:
        model, version, _ = before.get(name, (None, None, 0))
        if model == registry.name:
            record_deployment(
                registry,
                version,
                DeploymentRecord(
                    "azure", endpoint, name, None, "undeployed", now(), stage, 0, build_id(), "idle deployment deleted"
                ),
            )
