"""Online endpoints and deployments on Azure ML: blue/green release, traffic, smoke test, rollback, clean-up."""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from amlops.azure.operations import DEPLOYMENT_HEADER, AzureOperationError, Say, is_missing, log
from amlops.core.config import ConfigError
from amlops.core.tags import LIVE_TAG, PREVIOUS_TAG
from amlops.serving.client import ScoringClient
from amlops.serving.smoke import WrongModelServed, smoke_test


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
    warn_if_plain_http(scoring_uri)
    client = ScoringClient(scoring_uri, key=key, timeout=30.0)
    if deployment:
        client.session.headers[DEPLOYMENT_HEADER] = deployment
    return smoke_test(client, target.model_folder, target.rows, target.model_name, target.model_version)


def warn_if_plain_http(scoring_uri: str) -> bool:
    """Warn when an endpoint's key would cross the network unencrypted; whether it would.

    A Kubernetes online endpoint serves plain HTTP when the cluster's Azure ML extension was installed with
    ``allowInsecureConnections=True`` and no TLS certificate; managed endpoints are always HTTPS.
    """
    parsed = urlsplit(scoring_uri)
    if parsed.scheme != "http" or parsed.hostname in ("127.0.0.1", "localhost", "::1"):
        return False
    log.warning(
        "%s is plain HTTP: the endpoint key travels unencrypted. Give the cluster's Azure ML extension a TLS "
        "certificate (sslCertPemFile, sslKeyPemFile) before production traffic (docs/azure.md)",
        scoring_uri,
    )
    return True


def deployment_name(version: str, suffix: str) -> str:
    """``v<version>-<suffix>``: a valid online deployment name, new when ``suffix`` is.

    A letter first, then letters, digits and hyphens (anything else becomes one hyphen), 3 to 32 characters.
    """
    name = re.sub(r"[^A-Za-z0-9-]+", "-", f"v{version}-{suffix}").strip("-")
    return name[:32].rstrip("-")


def replaced_deployments(endpoint: Any) -> list[str]:
    """The deployments the endpoint's live one replaced and kept (its :data:`PREVIOUS_TAG`), newest first."""
    return [name for name in str((endpoint.tags or {}).get(PREVIOUS_TAG, "")).split(",") if name]


def endpoint_key(client: Any, endpoint_name: str) -> str:
    """The endpoint's primary key (key auth) or access token (token auth). Never log it."""
    keys = client.online_endpoints.get_keys(endpoint_name)
    secret = getattr(keys, "primary_key", None) or getattr(keys, "access_token", None)
    if not secret:
        raise AzureOperationError(f"endpoint {endpoint_name} returned no key or token")
    return secret


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
    if mirror_percent and type(endpoint).__name__ == "KubernetesOnlineEndpoint":
        raise ConfigError(
            f"{endpoint.name}: Kubernetes online endpoints do not take mirrored traffic (Azure ML supports it on "
            "managed online endpoints only); release without --mirror, or mirror in pre-production"
        )

    live_endpoint = ensure_endpoint(client, endpoint, say)
    existing = [item.name for item in client.online_deployments.list(endpoint_name)]
    if new in existing:
        raise AzureOperationError(
            f"deployment {new} already exists on {endpoint_name} (deployments: {existing}); a release creates a new "
            "deployment beside the live one: choose another deployment name"
        )
    before = dict(live_endpoint.traffic or {})
    tags_before = dict(live_endpoint.tags or {})
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
        live_endpoint.tags = tags_before  # the live and previous deployments it recorded are the old ones again
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
        # Everything goes to the new deployment now: test the endpoint exactly as clients call it, once routing has
        # converged, and the new deployment itself once more.
        _smoke_once_converged(smoke, scoring_uri, key, target, new, say=say, sleep=sleep)
        smoke(scoring_uri, key, new, target)
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


#: After traffic moved, how often (and how far apart) the endpoint is tested while an answer still comes from the
#: old deployment: routing takes a while to converge, and a healthy release must not be rolled back for it.
CONVERGE_ATTEMPTS = 6
CONVERGE_SECONDS = 10.0


def _smoke_once_converged(
    smoke: SmokeCheck, scoring_uri: str, key: str, target: SmokeTarget, new: str, *, say: Say, sleep: Callable
) -> None:
    """The endpoint's smoke test without a deployment header, tried again while another version answers.

    Raises:
        WrongModelServed: still another version after :data:`CONVERGE_ATTEMPTS` tries.
        SmokeTestFailure, ScoringError: any other failure, at once.
    """
    for attempt in range(1, CONVERGE_ATTEMPTS + 1):
        try:
            smoke(scoring_uri, key, None, target)
            return
        except WrongModelServed as error:
            if attempt == CONVERGE_ATTEMPTS:
                raise
            say(f"{error}; routing to {new} may still be converging: testing again in {CONVERGE_SECONDS:g} s")
            sleep(CONVERGE_SECONDS)


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
        recorded = replaced_deployments(endpoint)
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
