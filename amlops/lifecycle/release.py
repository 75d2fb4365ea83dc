"""The local release: pre-production → smoke test → approval → production → promote, and rollback.

The steps of the Azure release (``amlops.app.release_steps.STEPS``, the list both release pipelines run) on
local endpoints, for a version the pipeline registered without promoting it (``pipeline run --no-promote``):

1. ``release`` runs the pre-production steps: the candidate is deployed to the ``preprod`` endpoint (any free
   port) and smoke-tested; it is left running for whoever approves to try.
2. ``release --approve`` runs the production steps: what pre-production serves is deployed to the production
   endpoint (the port of ``deploymentConfig.local.yml``) beside the version serving there, smoke-tested on its
   own port, then takes the port; only then does the production marker move, and pre-production is stopped. A
   failure after it took the port puts the version it replaced back.
3. ``release --rollback`` (by hand, not part of the list): the version production replaced goes back the same
   way, marker included.

A failed deploy or smoke test raises before the marker moves, and the version serving keeps serving.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from amlops.core.errors import BadInputError
from amlops.core.names import LOCAL_ENDPOINT
from amlops.core.settings import ProjectSettings
from amlops.lifecycle import local_deploy
from amlops.registry import records
from amlops.registry.base import Version
from amlops.registry.mlflow import Registry
from amlops.serving.smoke import smoke_local

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


@dataclass
class LocalRelease:
    """What the local release's steps share within one command (``release``, or ``release --approve``).

    The steps are those of the Azure release's list (``amlops.app.release_steps``), on local endpoints:
    :func:`check`, :func:`deploy_preprod`, :func:`smoke_preprod`; after the approval, :func:`deploy_prod`,
    :func:`smoke_prod`, :func:`promote`, :func:`undo` (only after a failure), :func:`clean_up`.
    """

    version: str | None = None
    config: Path | None = None
    settings: ProjectSettings = field(default_factory=ProjectSettings)
    registry: Registry | None = None
    #: The production version before this release.
    previous: Version | None = None
    #: Whether the production endpoint serves this release's version (its deploy replaced the old server).
    moved: bool = False
    #: What the command reports.
    released: Released | None = None

    def __post_init__(self) -> None:
        self.registry = self.registry or Registry(self.settings)


def check(release: LocalRelease) -> None:
    """The candidate: ``version``, else the newest registered version (not retired, not in production)."""
    release.version = candidate(release.registry, release.version).version
    release.previous = release.registry.production()


def deploy_preprod(release: LocalRelease) -> None:
    """The candidate on the pre-production endpoint (any free port), smoke-tested on its direct port.

    It keeps running for whoever approves to try.
    """
    state, smoke = local_deploy.deploy_local(
        release.version,
        name=PREPRODUCTION_ENDPOINT,
        config=release.config,
        port=0,
        settings=release.settings,
        registry=release.registry,
    )
    previous = release.previous.version if release.previous else None
    release.released = Released("preprod", release.version, state.scoring_uri, smoke, previous)


def smoke_preprod(release: LocalRelease) -> None:
    """The smoke test again, through the public URL, as the people approving it will call it."""
    _smoke_public(release, PREPRODUCTION_ENDPOINT)


def deploy_prod(release: LocalRelease) -> None:
    """What pre-production serves (checked against ``version`` when given), on the production endpoint.

    It starts beside the version serving there and replaces it once healthy and smoke-tested.

    Raises:
        ReleaseError: pre-production serves nothing, or another version than ``version``.
    """
    staged = local_deploy.running_local(release.settings, PREPRODUCTION_ENDPOINT)
    if staged is None:
        raise ReleaseError("nothing is in pre-production to approve: run `python -m amlops release` first")
    if release.version is not None and staged.model_version != str(release.version):
        raise ReleaseError(
            f"pre-production serves v{staged.model_version}, not v{release.version}: approve what was tested, or "
            f"run `python -m amlops release --version {release.version}` first"
        )
    release.version = candidate(release.registry, staged.model_version).version
    release.previous = release.registry.production()
    state, smoke = local_deploy.deploy_local(
        release.version, name=PRODUCTION_ENDPOINT, config=release.config, settings=release.settings,
        registry=release.registry,
    )  # fmt: skip
    release.moved = True
    previous = release.previous.version if release.previous else None
    release.released = Released("production", release.version, state.scoring_uri, smoke, previous)


def smoke_prod(release: LocalRelease) -> None:
    """The smoke test again, through the production endpoint's public URL."""
    _smoke_public(release, PRODUCTION_ENDPOINT)


def promote(release: LocalRelease) -> None:
    """Move the production marker: only now, the version serving production having passed its smoke tests."""
    release.registry.promote(release.version)


def undo(release: LocalRelease) -> None:
    """After a failure: if this release's version took the production endpoint, put the one it replaced back."""
    if not release.moved or release.previous is None:
        log.info("release: the production endpoint still serves what it served: nothing to undo")
        return
    local_deploy.deploy_local(
        release.previous.version, name=PRODUCTION_ENDPOINT, config=release.config, settings=release.settings,
        registry=release.registry,
    )  # fmt: skip
    log.warning("release: v%s serves production again", release.previous.version)


def clean_up(release: LocalRelease) -> None:
    """Stop the pre-production endpoint: the release is final."""
    local_deploy.undeploy_local(PREPRODUCTION_ENDPOINT, settings=release.settings, registry=release.registry)


def _smoke_public(release: LocalRelease, name: str) -> None:
    state = local_deploy.running_local(release.settings, name)
    if state is None:
        raise ReleaseError(f"endpoint {name} is not running")
    smoke_local(state, release.settings.data_snapshot, direct=False)


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
