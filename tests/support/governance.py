"""Reading what governance leaves behind: the version a local endpoint serves, deployment records, events."""

from __future__ import annotations

import json

import requests

from amlops.core.settings import ProjectSettings
from amlops.registry import events, records
from amlops.registry.mlflow import Registry
from tests.support.scoring import ROW


def served_version(url: str) -> str:
    """The model version an endpoint answers with.

    Args:
        url: The endpoint's scoring URI.

    Returns:
        The version the answer names; the request must succeed.
    """
    answer = requests.post(url, json={"data": [ROW]}, timeout=30)
    assert answer.status_code == 200, answer.text
    return str(answer.json()["model"]["version"])


def record(registry: Registry, version: str, target: str = "local", endpoint: str = "local") -> dict:
    """The deployment record a version carries for one endpoint.

    Args:
        registry: The registry holding the version.
        version: The model version.
        target: ``local`` or ``azure``.
        endpoint: The endpoint's name.

    Returns:
        The record, parsed from the version's tag.
    """
    return json.loads(registry.get(version).tags[records.deployment_tag(target, endpoint)])


def logged_events(kind: str | None = None) -> list[dict]:
    """The events the current project logged, oldest first.

    Args:
        kind: Only events of this type; all events when ``None``.

    Returns:
        The events as logged.
    """
    found = events.read_events(ProjectSettings())
    return [e for e in found if kind is None or e["type"] == kind]
