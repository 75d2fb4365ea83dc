"""Retiring a version: refused by every deploy path until unretired; optionally replaced wherever it is live."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from amlops.core.errors import BadInputError
from amlops.core.lineage import now, who
from amlops.core.settings import PRODUCTION_ALIAS, ProjectSettings
from amlops.core.tags import (
    RETIRED_AT_TAG,
    RETIRED_BY_TAG,
    RETIRED_REASON_TAG,
    RETIRED_TAG,
    UNRETIRED_AT_TAG,
    UNRETIRED_BY_TAG,
    UNRETIRED_REASON_TAG,
)
from amlops.lifecycle.inventory import Serving, live_deployments
from amlops.lifecycle.local_deploy import deploy_local, local_record
from amlops.registry.base import ModelRegistry, Version
from amlops.registry.events import emit
from amlops.registry.records import DeploymentRecord, ensure_servable, retirement

log = logging.getLogger(__name__)

#: Where progress lines go (``log.info`` by default; the CLI prints them).
Say = Callable[[str], None]
#: Serves a version where a record says a retired one is live on a remote (Azure) endpoint, and returns the new
#: record; the Azure target provides it (:func:`amlops.azure.registry.redeploy`).
Redeploy = Callable[[DeploymentRecord, str, Say], DeploymentRecord]


class GovernanceError(BadInputError, LookupError):
    """A governance action was refused (what to do instead is in the message)."""


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
    registry: ModelRegistry,
    version: str,
    reason: str,
    *,
    replacement: str | None = None,
    replace: bool = False,
    config: Path | None = None,
    settings: ProjectSettings | None = None,
    serving: Serving | None = None,
    redeploy_remote: Redeploy | None = None,
    say: Say = log.info,
) -> RetireResult:
    """Mark a version as not to be served, and optionally replace it where it is live.

    Args:
        registry: The version's registry (:class:`~amlops.registry.mlflow.Registry` or :class:`AzureRegistry`).
        version: The version to retire.
        reason: Why; recorded and repeated in every refusal.
        replacement: Required when ``version`` is in production: the version that becomes production instead
            (promoted through ``registry.promote``; it must exist and not be retired).
        replace: Redeploy the production version wherever the retired one is live, through the normal deploy path
            (new endpoint started and smoke-tested before the old one stops; Azure: a blue/green release).
        config: Local deployment config for the replacements (default: the one each was deployed with).
        settings: Project settings.
        serving: What remote endpoints serve now (checks their records against their traffic).
        redeploy_remote: How to replace the version on a remote endpoint (``replace`` there).
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
    live = live_deployments(registry, target, settings=settings, serving=serving)
    replacement_version = successor or production
    if replace and live and replacement_version is None:
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
        result.replaced_by = replacement_version.version
        for record in live:
            result.replaced.append(
                _replace(
                    registry,
                    record,
                    replacement_version.version,
                    config=config,
                    settings=settings,
                    redeploy_remote=redeploy_remote,
                    say=say,
                )
            )
    return result


def _replace(
    registry: ModelRegistry,
    record: DeploymentRecord,
    version: str,
    *,
    config: Path | None,
    settings: ProjectSettings,
    redeploy_remote: Redeploy | None,
    say: Say,
) -> DeploymentRecord:
    """Serve ``version`` where ``record`` says a retired version is live, through the normal deploy path."""
    if record.target == "local":
        chosen = config or (Path(record.config) if record.config and Path(record.config).is_file() else None)
        say(f"replacing it on local endpoint {record.endpoint} by v{version}")
        state, _ = deploy_local(version, name=record.endpoint, config=chosen, settings=settings, registry=registry)
        return local_record(state, "succeeded", config=chosen)
    if redeploy_remote is None:
        raise GovernanceError(
            f"the retired version is live on {record.target} endpoint {record.endpoint}: replace it there with "
            f"--target {record.target}"
        )
    return redeploy_remote(record, version, say)


def unretire(
    registry: ModelRegistry, version: str, reason: str | None = None, *, settings: ProjectSettings | None = None
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


# --- models show ---------------------------------------------------------------------------------------------------


def resolve(registry: ModelRegistry, version: str | None) -> Version:
    """A version by number, or production for ``None``/``production``."""
    if version in (None, "", PRODUCTION_ALIAS):
        current = registry.production()
        if current is None:
            raise LookupError(f"no version of {registry.name} is in production")
        return current
    return registry.get(version)
