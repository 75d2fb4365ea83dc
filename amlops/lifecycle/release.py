"""The local release: pre-production → smoke test → approval → production → promote, and rollback.

The stages of the Azure DevOps release (``pipelines/azure-pipelines-release.yml``) on local endpoints, for a
version the pipeline registered without promoting it (``pipeline run --no-promote``):

1. ``release``: the candidate is deployed to the ``preprod`` endpoint (any free port) and smoke-tested; it is
   left running for whoever approves to try.
2. ``release --approve``: what pre-production serves is deployed to the production endpoint (the port of
   ``deploymentConfig.local.yml``) beside the version serving there, smoke-tested on its own port, then takes
   the port; only then does the production marker move, and pre-production is stopped.
3. ``release --rollback``: the version production replaced goes back the same way, marker included.

A failed deploy or smoke test raises before the marker moves, and the version serving keeps serving.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from amlops.core.errors import BadInputError
from amlops.core.names import LOCAL_ENDPOINT
from amlops.core.settings import ProjectSettings
from amlops.lifecycle import local_deploy
from amlops.registry import records
from amlops.registry.base import Version
from amlops.registry.mlflow import Registry

log = logging.getLogger(__name__)

#: The local pre-production endpoint (the production one is ``deploy``'s and ``serve``'s default, ``local``).
PREPRODUCTION_ENDPOINT = "preprod"
PRODUCTION_ENDPOINT = LOCAL_ENDPOINT


class ReleaseError(BadInputError, LookupError):
    """A release step that cannot run in the registry's and endpoints' present state; the message says why."""


@dataclass(frozen=True)
class Released:
    """One release step's result: which version now serves where, and what served before."""

    #: ``preprod``, ``production`` or ``rollback``.
    stage: str
    version: str
    url: str
    smoke: Any
    previous_production: str | None


def candidate(registry: Registry, version: str | None = None) -> Version:
    """The version to release: ``version``, else the newest registered one.

    Raises:
        ReleaseError: nothing registered, or the version is already in production.
        RetiredVersionError: the version is retired.
    """
    if version is None:
        versions = registry.versions()
        if not versions:
            raise ReleaseError(f"nothing to release: no version of {registry.name} is registered")
        chosen = max(versions, key=lambda v: int(v.version))
    else:
        chosen = registry.get(version)
    records.ensure_servable(chosen)
    if chosen.in_production:
        raise ReleaseError(
            f"{chosen.name} v{chosen.version} is already in production; register a new candidate with "
            "`python -m amlops pipeline run --no-promote`"
        )
    return chosen


def to_preproduction(
    version: str | None = None,
    *,
    config: Path | None = None,
    settings: ProjectSettings | None = None,
    registry: Registry | None = None,
) -> Released:
    """Deploy the candidate to the pre-production endpoint and smoke-test it (it keeps running for approval)."""
    settings = settings or ProjectSettings()
    registry = registry or Registry(settings)
    chosen = candidate(registry, version)
    production = registry.production()
    state, smoke = local_deploy.deploy_local(
        chosen.version, name=PREPRODUCTION_ENDPOINT, config=config, port=0, settings=settings, registry=registry
    )
    return Released("preprod", chosen.version, state.scoring_uri, smoke, production.version if production else None)


def approve(
    version: str | None = None,
    *,
    config: Path | None = None,
    settings: ProjectSettings | None = None,
    registry: Registry | None = None,
) -> Released:
    """Release what pre-production serves (checked against ``version`` when given) to production, then promote it.

    Raises:
        ReleaseError: pre-production serves nothing, or another version than ``version``.
        EndpointError, SmokeTestFailure: the production deploy failed; the version serving there keeps serving and
            the production marker has not moved.
    """
    settings = settings or ProjectSettings()
    registry = registry or Registry(settings)
    staged = local_deploy.running_local(settings, PREPRODUCTION_ENDPOINT)
    if staged is None:
        raise ReleaseError("nothing is in pre-production to approve: run `python -m amlops release` first")
    if version is not None and staged.model_version != str(version):
        raise ReleaseError(
            f"pre-production serves v{staged.model_version}, not v{version}: approve what was tested, or run "
            f"`python -m amlops release --version {version}` first"
        )
    chosen = candidate(registry, staged.model_version)
    previous = registry.production()
    released = _to_production(chosen.version, previous, config=config, settings=settings, registry=registry)
    local_deploy.undeploy_local(PREPRODUCTION_ENDPOINT, settings=settings, registry=registry)
    return released


def rollback(
    to: str | None = None,
    *,
    config: Path | None = None,
    settings: ProjectSettings | None = None,
    registry: Registry | None = None,
) -> Released:
    """Put the version production replaced (or ``to``) back on the production endpoint, then move the marker back.

    Raises:
        ReleaseError: no version in production, or none recorded before it and no ``to``.
    """
    settings = settings or ProjectSettings()
    registry = registry or Registry(settings)
    current = registry.production()
    if current is None:
        raise ReleaseError(f"no version of {registry.name} is in production: nothing to roll back")
    target = to or current.tags.get("replaced_version")
    if not target:
        raise ReleaseError(
            f"v{current.version} replaced no earlier production version; name the one to go back to with --to"
        )
    chosen = records.ensure_servable(registry.get(target))
    if chosen.version == current.version:
        raise ReleaseError(f"v{current.version} is already in production")
    return _to_production(
        chosen.version, current, config=config, settings=settings, registry=registry, stage="rollback"
    )


def _to_production(
    version: str,
    previous: Version | None,
    *,
    config: Path | None,
    settings: ProjectSettings,
    registry: Registry,
    stage: str = "production",
) -> Released:
    state, smoke = local_deploy.deploy_local(
        version, name=PRODUCTION_ENDPOINT, config=config, settings=settings, registry=registry
    )
    registry.promote(version)  # only now: the new version serves production and passed its smoke test
    return Released(stage, version, state.scoring_uri, smoke, previous.version if previous else None)
