"""Where each version is live, and what ``models show`` and ``endpoints list`` print."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from amlops.core.lineage import timestamp
from amlops.core.settings import ProjectSettings
from amlops.core.tags import EFFICACY_TAG, HISTORY_TAG, LINEAGE_TAGS, PARAM_TAG_PREFIX
from amlops.lifecycle.local_deploy import local_endpoints, local_record, registry_for
from amlops.registry.base import ModelRegistry, Version
from amlops.registry.mlflow import Registry
from amlops.registry.records import (
    HISTORY_LIMIT,
    DeploymentRecord,
    endpoint_records,
    history,
    parse_tag,
    retirement,
)

#: What a remote (Azure) endpoint serves now: ``{deployment: (model name, version, traffic %)}``, empty when the
#: endpoint does not exist. The Azure target provides it (:func:`amlops.azure.registry.azure_serving`).
Serving = Callable[[str], dict[str, tuple[str, str, int]]]


def live_deployments(
    registry: ModelRegistry,
    version: Version,
    *,
    settings: ProjectSettings | None = None,
    serving: Serving | None = None,
) -> list[DeploymentRecord]:
    """Where ``version`` serves now.

    Locally, the running endpoints are the truth (a record of a process that is gone is not live; a running
    endpoint without a record is). On Azure, the records; checked against the endpoint's traffic when ``serving``
    is given.
    """
    settings = settings or ProjectSettings()
    records = {(r.target, r.endpoint): r for r in endpoint_records(version)}
    live = []
    if registry.target == "local":
        for state in local_endpoints(settings):
            if (state.model_name, state.model_version) == (version.name, version.version):
                recorded = records.get(("local", state.name))
                live.append(recorded if recorded and recorded.live else local_record(state, "succeeded"))
    for record in records.values():
        if record.target == "azure" and record.live:
            if serving is not None:
                now_serving = serving(record.endpoint)
                share = now_serving.get(record.deployment, (None, None, 0))[2]
                if (
                    now_serving.get(record.deployment, (None, None))[:2] != (version.name, version.version)
                    or share <= 0
                ):
                    continue
            live.append(record)
    return live


def endpoints(settings: ProjectSettings | None = None, registry: ModelRegistry | None = None) -> list[dict[str, Any]]:
    """Every local endpoint with the version it serves: the running ones, and recorded ones no longer running."""
    settings = settings or ProjectSettings()
    registry = registry or Registry(settings)
    rows = []
    running = local_endpoints(settings)
    for state in running:
        try:
            retired = registry_for(registry, state.model_name).get(state.model_version).retired
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
                "since": timestamp(state.started_at),
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


def describe(
    registry: ModelRegistry,
    version: Version,
    *,
    settings: ProjectSettings | None = None,
    serving: Serving | None = None,
) -> dict[str, Any]:
    """A version's metrics, lineage, retirement, last efficacy check and deployments."""
    settings = settings or ProjectSettings()
    tags = version.tags
    live = live_deployments(registry, version, settings=settings, serving=serving)
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
        "registered_at": timestamp(version.created_ms / 1000) if version.created_ms else None,
        "run_id": version.run_id,
        "source": version.source,
        "metrics": version.metrics,
        "params": {k.removeprefix(PARAM_TAG_PREFIX): v for k, v in tags.items() if k.startswith(PARAM_TAG_PREFIX)},
        "lineage": {k: tags[k] for k in LINEAGE_TAGS if tags.get(k)},
        "efficacy": parse_tag(tags[EFFICACY_TAG]) if EFFICACY_TAG in tags else None,
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
