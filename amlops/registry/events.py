"""Lifecycle events: a line in ``.mlops/events.jsonl`` each, then the configured command (``AMLOPS_EVENTS_COMMAND``)."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shlex
import subprocess
import uuid
from collections.abc import Iterator

from amlops.core.lineage import now, who
from amlops.core.settings import EventSettings, ProjectSettings

log = logging.getLogger(__name__)

#: Events :func:`emit` sends.
EVENT_TYPES = ("model.registered", "model.promoted", "model.retired", "model.unretired", "model.degraded")
#: The lists :func:`captured` blocks collect this process's events into.
_collectors: list[list[dict]] = []


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
    _deliver(event, settings)
    for collected in _collectors:
        collected.append(event)
    return event


@contextlib.contextmanager
def captured() -> Iterator[list[dict]]:
    """Collect the events this process emits inside the block.

    A step inside an Azure ML job writes them into its output, whose local event log ends with the job; the
    machine that follows the job relays them (:func:`relay`).
    """
    collected: list[dict] = []
    _collectors.append(collected)
    try:
        yield collected
    finally:
        _collectors.remove(collected)


def relay(event: dict, settings: ProjectSettings | None = None) -> bool:
    """Deliver an event emitted elsewhere (in an Azure ML job) to this machine's log and command, once.

    Returns:
        Whether it was delivered (``False``: the log already has that event id).
    """
    settings = settings or ProjectSettings()
    if any(known.get("id") == event.get("id") for known in read_events(settings)):
        return False
    _deliver(event, settings)
    return True


def _deliver(event: dict, settings: ProjectSettings) -> None:
    """Append the event to the event log, then run the configured command."""
    line = json.dumps(event, sort_keys=True, default=str)
    path = settings.events_file
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as sink:
        sink.write(line + "\n")
    log.info("event %s: %s v%s", event["type"], event["model"], event["version"])
    rules = EventSettings()
    if rules.command:
        _run_event_command(rules, event["type"], line)


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
