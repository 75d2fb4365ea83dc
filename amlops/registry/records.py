"""Deployment records kept on model versions as tags, and the one check every deploy path makes (retired?)."""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, fields
from typing import Any

from amlops.core.tags import (
    DEPLOYMENT_TAG_PREFIX,
    HISTORY_TAG,
    RETIRED_AT_TAG,
    RETIRED_BY_TAG,
    RETIRED_REASON_TAG,
)
from amlops.registry.base import ModelRegistry, RetiredVersionError, Version

log = logging.getLogger(__name__)

OUTCOMES = ("succeeded", "failed", "rolled-back", "undeployed")
#: History kept in the ``deployments`` tag: at most this many records...
HISTORY_LIMIT = 20
#: ...and at most this many characters (MLflow 3.15 allows 100,000 per model version tag; older MLflow servers
#: and other registries 5,000: the history stays under the smallest).
TAG_VALUE_BUDGET = 5000


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
        # ``url`` is dropped from the stored form when there is none (a failed release, a deleted deployment).
        return cls(**{"url": None, **{k: v for k, v in value.items() if k in known}})


def deployment_tag(target: str, endpoint: str) -> str:
    """``deployment.<target>.<endpoint>``."""
    return f"{DEPLOYMENT_TAG_PREFIX}{target}.{endpoint}"


def parse_tag(value: str) -> Any:
    """A JSON tag value, or ``None`` when it is not JSON."""
    try:
        return json.loads(value)
    except (TypeError, ValueError):
        return None


def endpoint_records(version: Version) -> list[DeploymentRecord]:
    """The latest record per endpoint, newest first."""
    records = []
    for key, value in version.tags.items():
        parsed = parse_tag(value) if key.startswith(DEPLOYMENT_TAG_PREFIX) else None
        if isinstance(parsed, dict):
            try:
                records.append(DeploymentRecord.from_dict(parsed))
            except TypeError:
                log.warning("%s v%s: unreadable deployment tag %s", version.name, version.version, key)
    return sorted(records, key=lambda r: r.at, reverse=True)


def history(version: Version) -> list[DeploymentRecord]:
    """The recorded deployment history (latest :data:`HISTORY_LIMIT`), oldest first."""
    parsed = parse_tag(version.tags.get(HISTORY_TAG, "[]"))
    return [DeploymentRecord.from_dict(item) for item in parsed or [] if isinstance(item, dict)]


def _history_value(records: list[DeploymentRecord]) -> str:
    kept = [r.as_dict() for r in records[-HISTORY_LIMIT:]]
    value = json.dumps(kept, separators=(",", ":"))
    while len(value) > TAG_VALUE_BUDGET and kept:
        kept.pop(0)
        value = json.dumps(kept, separators=(",", ":"))
    return value


def record_deployment(registry: ModelRegistry, version: str, record: DeploymentRecord) -> bool:
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


# Retirement is recorded here too: every deploy path checks it before anything is staged.


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
