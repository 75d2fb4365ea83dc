"""Efficacy: the production model measured on newer labelled data, against thresholds."""

from __future__ import annotations

import json
import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from amlops.core.lineage import now
from amlops.core.settings import EfficacySettings, ProjectSettings
from amlops.core.tags import EFFICACY_TAG
from amlops.ml import data
from amlops.ml import model as model_lib
from amlops.registry.base import ModelRegistry
from amlops.registry.events import emit
from amlops.scoring.model import load_model

log = logging.getLogger(__name__)


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
    registry: ModelRegistry,
    data_path: Path,
    *,
    rules: EfficacySettings | None = None,
    settings: ProjectSettings | None = None,
) -> EfficacyReport:
    """Score the production model on a newer labelled CSV with the gate's metrics and apply the thresholds.

    The CSV is validated against the contract first, and must hold the columns the production version takes
    (``contract.yml`` may have changed since it was trained). ``degraded`` when a metric breaks the contract's gate
    limits, or the primary metric is worse than recorded at registration by more than
    ``max_relative_degradation`` of the recorded value. Only the primary metric is compared with the record: the
    others move with noise, and the gate chose the model on the primary one. The result is recorded on the
    version (``efficacy.last_check``); a ``degraded`` result emits ``model.degraded``.
    """
    rules = rules or EfficacySettings()
    settings = settings or ProjectSettings()
    contract = settings.contract
    current = registry.production()
    if current is None:
        raise LookupError(f"no version of {registry.name} is in production: nothing to check")
    path = Path(data_path)
    frame = data.validate(data.load_csv(path), contract, min_rows=rules.min_rows, source=str(path))
    with tempfile.TemporaryDirectory(prefix="amlops-check-") as scratch:
        loaded = load_model(registry.download(current.version, Path(scratch) / "model"))
        estimator, columns = loaded.estimator, loaded.features  # the estimator is read here, while the files exist
    missing = [column for column in columns if column not in frame.columns]
    if missing:  # contract.yml changed since this version was trained
        raise data.DataValidationError(
            str(path),
            [{"column": c, "rule": "column_in_dataframe", "detail": f"v{current.version} takes it"} for c in missing],
        )
    measured = model_lib.metrics(estimator, frame, contract, columns)
    recorded = current.metrics
    reasons = contract.gate.breaches(measured)
    change = {
        name: (measured[name] - recorded[name]) / abs(recorded[name])
        for name in measured
        if recorded.get(name)  # neither missing nor zero
    }
    primary = contract.metric
    if primary.name in change:
        worse = change[primary.name] if primary.direction == "minimize" else -change[primary.name]
        if worse > rules.max_relative_degradation:
            reasons.append(
                f"{primary.name} {measured[primary.name]:.4g} is {worse:.1%} worse than the "
                f"{recorded[primary.name]:.4g} recorded at registration (allowed: {rules.max_relative_degradation:.0%})"
            )
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
        thresholds={
            "metric": primary.model_dump(),
            "limits": {name: limit.model_dump(exclude_none=True) for name, limit in contract.gate.limits.items()},
            "max_relative_degradation": rules.max_relative_degradation,
        },
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
    for name, value in report.metrics.items():
        recorded = report.recorded.get(name)
        versus = f"  (at registration {recorded:.4f}" if recorded is not None else "  (nothing recorded"
        versus += f", {report.change[name]:+.1%})" if name in report.change else ")"
        lines.append(f"  {name:8} {value:10.4f}{versus}")
    t = report.thresholds
    limits = ", ".join(
        " and ".join(f"{name} {'>=' if bound == 'min' else '<='} {value}" for bound, value in limit.items())
        for name, limit in t["limits"].items()
    )
    lines.append(
        f"  thresholds: {limits or 'no limits'} (contract.yml gate); {t['metric']['name']} at most "
        f"{t['max_relative_degradation']:.0%} worse than at registration (AMLOPS_EFFICACY_MAX_RELATIVE_DEGRADATION)"
    )
    lines += [f"  - {reason}" for reason in report.reasons]
    return "\n".join(lines) + "\n"
