"""The local endpoints as deployments: blue/green replacement, smoke test, and a record on each version."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from amlops.core.lineage import build_id, now
from amlops.core.names import LOCAL_ENDPOINT
from amlops.core.processes import stop_process_group
from amlops.core.settings import ProjectSettings
from amlops.registry.base import ModelRegistry
from amlops.registry.mlflow import Registry
from amlops.registry.records import DeploymentRecord, record_deployment
from amlops.serving.deploy import LOCAL_DEPLOYMENT_CONFIG_FILE, stage_version
from amlops.serving.local import EndpointState, LocalEndpoint, read_state, recorded_state, stop_recorded
from amlops.serving.smoke import SmokeResult, smoke_local

log = logging.getLogger(__name__)


def registry_for(registry: ModelRegistry, model_name: str) -> ModelRegistry:
    """The local registry holding ``model_name`` (another model may have served the endpoint before)."""
    if registry.name == model_name or registry.target != "local":
        return registry
    return Registry(registry.settings.model_copy(update={"model_name": model_name}))


def local_record(
    state: EndpointState,
    outcome: str,
    *,
    detail: str | None = None,
    config: Path | None = None,
) -> DeploymentRecord:
    """The deployment record of a local endpoint."""
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
    state: EndpointState,
    outcome: str,
    *,
    registry: ModelRegistry | None = None,
    settings: ProjectSettings | None = None,
    detail: str | None = None,
    config: Path | None = None,
) -> bool:
    """Record a local endpoint's outcome on the version it serves (best effort)."""
    settings = settings or ProjectSettings()
    registry = registry_for(registry or Registry(settings), state.model_name)
    record = local_record(state, outcome, detail=detail, config=config)
    return record_deployment(registry, state.model_version, record)


def running_local(settings: ProjectSettings | None = None, name: str = LOCAL_ENDPOINT) -> EndpointState | None:
    """The state of a running local endpoint, or ``None``."""
    try:
        return read_state((settings or ProjectSettings()).endpoints_dir, name)
    except LookupError:
        return None


def local_endpoints(settings: ProjectSettings | None = None) -> list[EndpointState]:
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
    registry: ModelRegistry | None = None,
) -> tuple[EndpointState, SmokeResult]:
    """Deploy a version (production by default) to a local endpoint left running, smoke-tested, recorded.

    A version already running under ``name`` keeps serving until the new one is healthy and passed its smoke test
    (checked on the new server's direct port while both share the public one), then it is stopped; if the new one
    fails, it is removed and the old one keeps the endpoint. Each outcome is recorded on the version it concerns.
    A retired version is refused before anything stops.

    Returns:
        The new endpoint's :class:`~amlops.serving.local.EndpointState` and its smoke test result.
    """
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
        smoke = smoke_local(state, settings.data_snapshot)
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
    warn_if_public_port_held(endpoint)
    return state, smoke


def undeploy_local(
    name: str = LOCAL_ENDPOINT, *, settings: ProjectSettings | None = None, registry: ModelRegistry | None = None
) -> EndpointState | None:
    """Stop a local endpoint and record it on the version it served; ``None`` when none was recorded.

    An endpoint whose server had already exited (its state file left behind) is recorded ``undeployed`` too.
    """
    settings = settings or ProjectSettings()
    state = recorded_state(settings.endpoints_dir, name)
    if state is None:
        return None
    detail = None if stop_recorded(settings.endpoints_dir, name) else "its server had already exited"
    record_local(state, "undeployed", registry=registry, settings=settings, detail=detail)
    return state


def warn_if_public_port_held(endpoint: LocalEndpoint) -> None:
    """Tell clients holding the public port apart from an unhealthy server (whose direct-port smoke test passed)."""
    if not endpoint.answers_publicly():
        log.warning(
            "endpoint %s: healthy (its smoke test passed on its direct port %s), but its public port %s did not "
            "answer within 5 s: clients are holding it",
            endpoint.name,
            endpoint.state.direct_url,
            endpoint.state.url,
        )


def start_serving(
    endpoint: LocalEndpoint,
    *,
    settings: ProjectSettings | None = None,
    registry: ModelRegistry | None = None,
    config: Path | None = None,
    smoke: bool = False,
) -> tuple[EndpointState, SmokeResult | None]:
    """Start an unstarted :class:`~amlops.serving.local.LocalEndpoint`, smoke-test it, record it as serving.

    A failed start or smoke test stops it and records ``failed`` before raising. :func:`undeploy_local` ends it.
    """
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
    warn_if_public_port_held(endpoint)
    return state, result


@contextmanager
def serving_local(
    endpoint: LocalEndpoint,
    *,
    settings: ProjectSettings | None = None,
    registry: ModelRegistry | None = None,
    config: Path | None = None,
    smoke: bool = False,
) -> Iterator[tuple[EndpointState, SmokeResult | None]]:
    """Run an unstarted :class:`~amlops.serving.local.LocalEndpoint` for the ``with`` block, recording it.

    Yields:
        The endpoint state and the smoke test result (``None`` unless ``smoke``).
    """
    state, result = start_serving(endpoint, settings=settings, registry=registry, config=config, smoke=smoke)
    try:
        yield state, result
    finally:
        endpoint.stop()
        record_local(state, "undeployed", registry=registry, settings=settings or ProjectSettings(), config=config)
