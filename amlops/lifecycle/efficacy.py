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

    The CSV is validated against the data schema first. ``degraded`` when RMSE is above ``max_rmse``, R² below
    ``min_r2``, or RMSE or MAE worse than recorded at registration by more than ``max_relative_degradation``. The
    result is recorded on the version (``efficacy.last_check``); a ``degraded`` result emits ``model.degraded``.
    """
    rules = rules or EfficacySettings()
    settings = settings or ProjectSettings()
    current = registry.production()
    if current is None:
        raise LookupError(f"no version of {registry.name} is in production: nothing to check")
    path = Path(data_path)
    frame = data.validate(data.load_csv(path), settings.contract, min_rows=rules.min_rows, source=str(path))
    with tempfile.TemporaryDirectory(prefix="amlops-check-") as scratch:
        estimator = model_lib.load_mlflow_model(registry.download(current.version, Path(scratch) / "model"))
    measured = model_lib.metrics(estimator, frame)
    recorded = current.metrics
    reasons = []
    if measured["rmse"] > rules.max_rmse:
        reasons.append(f"rmse {measured['rmse']:.3f} is above the ceiling {rules.max_rmse}")
    if measured["r2"] < rules.min_r2:
        reasons.append(f"r2 {measured['r2']:.4f} is below the floor {rules.min_r2}")
    change = {}
    for name in ("rmse", "mae"):
        if recorded.get(name):
            change[name] = (measured[name] - recorded[name]) / recorded[name]
            if change[name] > rules.max_relative_degradation:
                reasons.append(
                    f"{name} {measured[name]:.3f} is {change[name]:.1%} worse than the {recorded[name]:.3f} "
                    f"recorded at registration (allowed: {rules.max_relative_degradation:.0%})"
                )
    if "r2" in recorded:
        change["r2"] = measured["r2"] - recorded["r2"]
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
        thresholds=rules.model_dump(),
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
    for name in ("rmse", "mae", "r2"):
        recorded = report.recorded.get(name)
        versus = f"  (at registration {recorded:.4f}" if recorded is not None else "  (nothing recorded"
        if name in report.change:
            change = report.change[name]
            versus += f", {change:+.1%})" if name != "r2" else f", {change:+.4f})"
        else:
            versus += ")"
        lines.append(f"  {name:5} {report.metrics[name]:10.4f}{versus}")
    t = report.thresholds
    lines.append(
        f"  thresholds: rmse <= {t['max_rmse']}, r2 >= {t['min_r2']}, rmse/mae at most "
        f"{t['max_relative_degradation']:.0%} worse than at registration (AMLOPS_EFFICACY_*)"
    )
    lines += [f"  - {reason}" for reason in report.reasons]
    return "\n".join(lines) + "\n"
