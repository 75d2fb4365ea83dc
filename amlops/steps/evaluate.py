"""Step ``evaluate``: score the candidate and the production model on the same holdout, apply the gate.

Inputs: ``--model`` (a ``train`` output folder), ``--data`` (a ``prep`` output folder).
Output (in ``--out``): ``decision.json`` with both models' metrics, the outcome and its reasons.
"""

from __future__ import annotations

import argparse
import logging
import tempfile
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from amlops.core.contract import Contract
from amlops.core.files import read_json, write_json
from amlops.core.logs import run_step
from amlops.core.settings import ProjectSettings
from amlops.ml import model as model_lib
from amlops.registry.mlflow import Registry
from amlops.scoring.model import load_model
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
    gate: dict[str, Any] = field(default_factory=dict)

    @property
    def register(self) -> bool:
        """Whether the candidate may be registered and promoted."""
        return self.outcome == "register"


def decide(
    candidate: dict[str, float],
    production: dict[str, float] | None,
    contract: Contract,
    production_version: str | None = None,
    notes: Sequence[str] = (),
) -> Decision:
    """Apply the gate: the contract's absolute limits always; with a model in production, a margin over it.

    The margin is on the contract's primary metric: the candidate must be better than production by at least
    ``gate.min_improvement`` of production's value (relative), in the metric's direction.

    Args:
        candidate: Holdout metrics of the candidate.
        production: Holdout metrics of the production model on the same rows, or ``None`` (none in production, or
            one that takes columns the data no longer has).
        contract: The data and model contract (its ``metric`` and ``gate``).
        production_version: Registry version of the production model, for the reasons.
        notes: More reasons, after the verdict's (a change of the columns the model takes).
    """
    metric, gate = contract.metric, contract.gate
    breaches = gate.breaches(candidate)
    common = {
        "candidate": candidate,
        "production": production,
        "production_version": production_version,
        "gate": {"metric": metric.model_dump(), **gate.model_dump()},
    }
    if breaches:
        return Decision("reject", [*breaches, *notes], **common)
    passed = "limits met (" + ", ".join(f"{name} {candidate[name]:.4g}" for name in gate.limits) + ")"
    if production is None:
        alone = "no model in production yet" if production_version is None else "judged on the limits alone"
        return Decision("register", [f"{alone}; {passed}", *notes], **common)
    name, ours, theirs = metric.name, candidate[metric.name], production[metric.name]
    margin = gate.min_improvement * abs(theirs)
    needed = theirs - margin if metric.direction == "minimize" else theirs + margin
    versus = f"candidate {name} {ours:.4f} vs production v{production_version} {name} {theirs:.4f} on the same holdout"
    if metric.better(ours, than=theirs) and not metric.better(needed, than=ours):
        return Decision(
            "register", [f"{versus}: better by at least {gate.min_improvement:.1%}", passed, *notes], **common
        )
    bound = "<=" if metric.direction == "minimize" else ">="
    return Decision(
        "keep",
        [
            f"{versus}: not better by the required {gate.min_improvement:.1%} (needs {bound} {needed:.4f}); "
            f"production v{production_version} stays",
            *notes,
        ],
        **common,
    )


def run(trained: Path, prepared: Path, out: Path, contract: Contract | None = None, registry=None) -> Decision:
    """Evaluate a trained candidate against the registry's production model and write ``decision.json``.

    Args:
        trained: Folder written by the ``train`` step.
        prepared: Folder written by the ``prep`` step (its test split is the holdout).
        out: Folder for ``decision.json``.
        contract: The data and model contract (metric and gate); the project's when omitted.
        registry: The model registry; the project's own when omitted.
    """
    contract = contract or ProjectSettings().contract
    registry = registry or Registry()
    decision = judge(trained, prepared, contract, registry)
    write_json(Path(out) / DECISION_FILE, asdict(decision) | {"register": decision.register})
    log.info("evaluate: %s — %s", decision.outcome, "; ".join(decision.reasons))
    return decision


def judge(trained: Path, prepared: Path, contract: Contract, registry) -> Decision:
    """Score the candidate and the registry's current production model on the holdout, and apply the gate.

    Production is scored with the columns it takes, which an edited ``contract.yml`` may have changed: the reasons
    then say that the endpoint's requests change. If the data no longer has one of them, production cannot be
    scored on these rows, and the candidate is judged on the contract's limits alone.
    """
    _, holdout = prep.load_splits(prepared)
    candidate = model_lib.metrics(model_lib.load_mlflow_model(Path(trained) / train_step.MODEL_DIR), holdout, contract)
    current = registry.production()
    if current is None:
        return decide(candidate, None, contract)
    with tempfile.TemporaryDirectory() as scratch:
        loaded = load_model(registry.download(current.version, Path(scratch) / "m"))
        production, columns = loaded.estimator, loaded.features  # the estimator is read here, while the files exist
    notes = [] if columns == contract.feature_names else [_requests_change(current.version, columns, contract)]
    missing = [column for column in columns if column not in holdout.columns]
    if missing:
        notes.insert(0, f"production v{current.version} takes columns the data no longer has: {', '.join(missing)}")
        return decide(candidate, None, contract, current.version, notes)
    production_metrics = model_lib.metrics(production, holdout, contract, columns)
    return decide(candidate, production_metrics, contract, current.version, notes)


def _requests_change(version: str, columns: tuple[str, ...], contract: Contract) -> str:
    ours = contract.feature_names
    change = [f"without {', '.join(c for c in columns if c not in ours)}"] if set(columns) - set(ours) else []
    change += [f"with {', '.join(c for c in ours if c not in columns)}"] if set(ours) - set(columns) else []
    return (
        f"the endpoint's requests change: production v{version} takes {len(columns)} columns, the candidate "
        f"{len(ours)} ({'; '.join(change) or 'in another order'})"
    )


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
