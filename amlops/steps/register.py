"""Step ``register``: register the candidate when the decision allows it, with metrics and lineage.

Inputs: ``--model`` (a ``train`` output), ``--decision`` (an ``evaluate`` output), ``--data`` (a ``prep``
output). Output (in ``--out``): ``registration.json`` naming the version registered (or none) and the
version in production afterwards.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
from dataclasses import asdict
from pathlib import Path

from amlops.core.files import file_lock, read_json, write_json
from amlops.core.lineage import build_id, git_commit
from amlops.core.logs import run_step
from amlops.core.settings import ProjectSettings
from amlops.registry import events, tracking
from amlops.registry.mlflow import Registry
from amlops.steps import evaluate, prep
from amlops.steps import train as train_step

log = logging.getLogger("amlops.steps.register")  # not __main__ when run with -m

REGISTRATION_FILE = "registration.json"
#: Reliability tests set this to a point name (``register:before-promote``) to kill the process there.
FAULT_VARIABLE = "AMLOPS_FAULT_INJECTION"


def fault_point(name: str) -> None:
    """Die here, as a crash would, when ``AMLOPS_FAULT_INJECTION`` names this point (reliability tests only)."""
    if os.environ.get(FAULT_VARIABLE) == name:
        log.error("fault injection: exiting at %s", name)
        os._exit(70)


@contextlib.contextmanager
def registry_lock(settings: ProjectSettings):
    """Serialise check-register-promote between processes sharing a local (SQLite) registry.

    Two pipeline runs may evaluate at the same time; under this lock the later one re-checks production before
    it registers, so the production marker always ends on a version that beat the one it replaced. A remote
    registry (Azure ML) offers no such lock: there, concurrent training runs are serialised by the release.
    """
    uri = settings.resolved_tracking_uri
    if not uri.startswith("sqlite:///"):
        yield
        return
    with file_lock(Path(uri.removeprefix("sqlite:///")).with_suffix(".register.lock")):
        yield


def lineage_tags(
    train_record: dict, decision: evaluate.Decision, fingerprint: dict, pipeline_run_id: str | None, root: Path
) -> dict[str, str]:
    """Tags recorded on a new model version: metrics, parameters, code, data, run and decision."""
    commit, dirty = git_commit(root)
    tags = {f"metric.{k}": repr(float(v)) for k, v in decision.candidate.items()}
    tags |= {f"param.{k}": str(v) for k, v in train_record["params"].items()}
    tags |= {
        "git_commit": commit,
        "git_dirty": str(dirty).lower(),
        "data_sha256": fingerprint["sha256"],
        "data_rows": str(fingerprint["rows"]),
        "data_source": Path(fingerprint["source"]).name,
        "train_run_id": train_record["run_id"],
        "pipeline_run_id": pipeline_run_id or "",
        "build_id": build_id() or "",
        "decision": decision.outcome,
        "decision_reasons": " | ".join(decision.reasons),
    }
    return {k: v for k, v in tags.items() if v != ""}


def run(
    trained: Path,
    decided: Path,
    prepared: Path,
    out: Path,
    *,
    promote: bool = True,
    pipeline_run_id: str | None = None,
    registry=None,
) -> dict:
    """Register the candidate if ``decision.json`` says so, and move the production marker to it.

    Args:
        trained: Folder written by the ``train`` step.
        decided: Folder written by the ``evaluate`` step.
        prepared: Folder written by the ``prep`` step.
        out: Folder for ``registration.json``.
        promote: Move the production marker to the new version (release flows pass ``False`` and promote
            after approval).
        pipeline_run_id: Recorded as lineage; inside an Azure ML pipeline step, the pipeline job's name when
            omitted.
        registry: The model registry; the project's own when omitted.
    """
    registry = registry or Registry()
    decision = evaluate.load_decision(decided)
    with registry_lock(registry.settings), events.captured() as emitted:
        if promote:
            decision = _judged_against_production(decision, trained, prepared, registry)
        record: dict = {
            "outcome": decision.outcome,
            "reasons": decision.reasons,
            "registered_version": None,
            # The verdict acted on: evaluate's, or the one re-applied above (then decision.json is out of date).
            "decision": asdict(decision),
        }
        if decision.register:
            train_record = read_json(Path(trained) / train_step.INFO_FILE)
            fingerprint = read_json(Path(prepared) / prep.FINGERPRINT_FILE)
            run_id = pipeline_run_id or tracking.enclosing_pipeline_job(registry.settings)
            tags = lineage_tags(train_record, decision, fingerprint, run_id, ProjectSettings().root)
            version = registry.register(
                train_record["model_uri"], train_record["run_id"], tags, description="; ".join(decision.reasons)
            )
            record["registered_version"] = version.version
            fault_point("register:before-promote")
            if promote:
                registry.promote(version.version)
    if not decision.register:
        log.info("register: nothing registered (%s)", decision.outcome)
    current = registry.production()
    record["production_version"] = current.version if current else None
    record["model_name"] = registry.name
    # Inside an Azure ML job the local event log ends with the job: the events travel with the output instead.
    record["events"] = emitted
    write_json(Path(out) / REGISTRATION_FILE, record)
    return record


def promote_candidate(
    version: str, decision: evaluate.Decision, trained: Path, prepared: Path, registry=None
) -> evaluate.Decision:
    """Move the production marker to a candidate registered without it, once its deployment checks passed.

    Under the registry lock, like :func:`run`: if production moved since the candidate was judged, the gate is
    applied again against the new production model, and the marker stays where it is unless the candidate wins.

    Args:
        version: The candidate's registered version.
        decision: The verdict it was registered with (``registration.json``'s ``decision``).
        trained: Folder written by the ``train`` step.
        prepared: Folder written by the ``prep`` step (its holdout is what the gate compares on).
        registry: The model registry; the project's own when omitted.

    Returns:
        The verdict acted on.
    """
    registry = registry or Registry()
    with registry_lock(registry.settings):
        decision = _judged_against_production(decision, trained, prepared, registry)
        if decision.register:
            registry.promote(version)
        else:
            log.warning("register: v%s stays registered but is not promoted: %s", version, "; ".join(decision.reasons))
    return decision


def _judged_against_production(
    decision: evaluate.Decision, trained: Path, prepared: Path, registry
) -> evaluate.Decision:
    """``decision``, or the gate applied again if production moved since it was made (call under the lock)."""
    current = registry.production()
    if decision.register and (current.version if current else None) != decision.production_version:
        # Another run promoted a model since this one was evaluated: judge again against it, same holdout.
        log.warning(
            "register: production moved to v%s since evaluate; re-applying the gate",
            current.version if current else None,
        )
        return evaluate.judge(trained, prepared, ProjectSettings().contract, registry)
    return decision


def parser() -> argparse.ArgumentParser:
    """Command-line interface of the step."""
    cli = argparse.ArgumentParser(prog="register", description=__doc__.splitlines()[0])
    cli.add_argument("--model", type=Path, required=True, help="folder written by the train step")
    cli.add_argument("--decision", type=Path, required=True, help="folder written by the evaluate step")
    cli.add_argument("--data", type=Path, required=True, help="folder written by the prep step")
    cli.add_argument("--out", type=Path, required=True, help="output folder")
    cli.add_argument(
        "--no-promote", dest="promote", action="store_false", help="register without moving the production marker"
    )
    cli.add_argument("--pipeline-run-id", default=None)
    return cli


def main(argv: list[str] | None = None) -> int:
    """Entry point: ``python -m amlops.steps.register --model … --decision … --data … --out …``."""
    args = parser().parse_args(argv)
    run(args.model, args.decision, args.data, args.out, promote=args.promote, pipeline_run_id=args.pipeline_run_id)
    return 0


if __name__ == "__main__":
    raise SystemExit(run_step(main))
