"""Step ``evaluate``: score the candidate and the production model on the same holdout, apply the gate.

Inputs: ``--model`` (a ``train`` output folder), ``--data`` (a ``prep`` output folder).
Output (in ``--out``): ``decision.json`` with both models' metrics, the outcome and its reasons.
"""

from __future__ import annotations

import argparse
import logging
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

from amlops.core.files import read_json, write_json
from amlops.core.logs import run_step
from amlops.core.settings import GateSettings
from amlops.ml import model as model_lib
from amlops.registry.mlflow import Registry
from amlops.steps import prep
from amlops.steps import train as train_step

log = logging.getLogger("amlops.steps.evaluate")  # not __main__ when run with -m

DECISION_FILE = "decision.json"

#: ``register``: the candidate becomes a new version (and production); ``keep``: production stays, the
#: candidate is not better; ``reject``: the candidate fails the absolute floors.
Outcome = Literal["register", "keep", "reject"]


@dataclass(frozen=True)
class Decision:
    """The gate's verdict on a candidate, with the numbers behind it."""

    outcome: Outcome
    reasons: list[str]
    candidate: dict[str, float]
    production: dict[str, float] | None = None
    production_version: str | None = None
    gate: dict[str, float] = field(default_factory=dict)

    @property
    def register(self) -> bool:
        """Whether the candidate may be registered and promoted."""
        return self.outcome == "register"


def decide(
    candidate: dict[str, float],
    production: dict[str, float] | None,
    gate: GateSettings,
    production_version: str | None = None,
) -> Decision:
    """Apply the gate: absolute floors always; when a production model exists, a margin over it.

    Args:
        candidate: Holdout metrics of the candidate (rmse, mae, r2).
        production: Holdout metrics of the production model on the same rows, or ``None``.
        gate: Thresholds.
        production_version: Registry version of the production model, for the reasons.
    """
    floors = []
    if candidate["rmse"] > gate.max_rmse:
        floors.append(f"rmse {candidate['rmse']:.3f} is above the ceiling {gate.max_rmse}")
    if candidate["r2"] < gate.min_r2:
        floors.append(f"r2 {candidate['r2']:.4f} is below the floor {gate.min_r2}")
    common = {
        "candidate": candidate,
        "production": production,
        "production_version": production_version,
        "gate": gate.model_dump(),
    }
    if floors:
        return Decision("reject", floors, **common)
    passed = f"rmse {candidate['rmse']:.3f} <= {gate.max_rmse} and r2 {candidate['r2']:.4f} >= {gate.min_r2}"
    if production is None:
        return Decision("register", [f"no model in production yet; absolute floors met ({passed})"], **common)
    needed = production["rmse"] * (1.0 - gate.min_improvement)
    versus = (
        f"candidate rmse {candidate['rmse']:.4f} vs production v{production_version} rmse "
        f"{production['rmse']:.4f} on the same holdout"
    )
    if candidate["rmse"] <= needed and candidate["rmse"] < production["rmse"]:
        return Decision("register", [f"{versus}: better by at least {gate.min_improvement:.1%}", passed], **common)
    return Decision(
        "keep",
        [
            f"{versus}: not better by the required {gate.min_improvement:.1%} (needs <= {needed:.4f}); "
            f"production v{production_version} stays"
        ],
        **common,
    )


def run(trained: Path, prepared: Path, out: Path, gate: GateSettings | None = None, registry=None) -> Decision:
    """Evaluate a trained candidate against the registry's production model and write ``decision.json``.

    Args:
        trained: Folder written by the ``train`` step.
        prepared: Folder written by the ``prep`` step (its test split is the holdout).
        out: Folder for ``decision.json``.
        gate: Thresholds; read from the environment when omitted.
        registry: The model registry; the project's own when omitted.
    """
    gate = gate or GateSettings()
    registry = registry or Registry()
    decision = judge(trained, prepared, gate, registry)
    write_json(Path(out) / DECISION_FILE, asdict(decision) | {"register": decision.register})
    log.info("evaluate: %s — %s", decision.outcome, "; ".join(decision.reasons))
    return decision


def judge(trained: Path, prepared: Path, gate: GateSettings, registry) -> Decision:
    """Score the candidate and the registry's current production model on the holdout, and apply the gate."""
    _, holdout = prep.load_splits(prepared)
    candidate = model_lib.metrics(model_lib.load_mlflow_model(Path(trained) / train_step.MODEL_DIR), holdout)
    current = registry.production()
    production_metrics = None
    if current is not None:
        with tempfile.TemporaryDirectory() as scratch:
            production_model = model_lib.load_mlflow_model(registry.download(current.version, Path(scratch) / "m"))
        production_metrics = model_lib.metrics(production_model, holdout)
    return decide(candidate, production_metrics, gate, current.version if current else None)


def load_decision(folder: Path) -> Decision:
    """Read the ``decision.json`` an evaluate run wrote."""
    return decision_from(read_json(Path(folder) / DECISION_FILE))


def decision_from(content: dict) -> Decision:
    """A :class:`Decision` from its JSON form (``decision.json``, or the one ``registration.json`` records)."""
    return Decision(**{key: value for key, value in content.items() if key != "register"})


def parser() -> argparse.ArgumentParser:
    """Command-line interface of the step."""
    cli = argparse.ArgumentParser(prog="evaluate", description=__doc__.splitlines()[0])
    cli.add_argument("--model", type=Path, required=True, help="folder written by the train step")
    cli.add_argument("--data", type=Path, required=True, help="folder written by the prep step")
    cli.add_argument("--out", type=Path, required=True, help="output folder")
    return cli


def main(argv: list[str] | None = None) -> int:
    """Entry point: ``python -m amlops.steps.evaluate --model trained/ --data prepared/ --out evaluated/``."""
    args = parser().parse_args(argv)
    run(args.model, args.data, args.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(run_step(main))
