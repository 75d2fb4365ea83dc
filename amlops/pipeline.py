"""The training pipeline run locally: prep → train → evaluate → register, chained through folders.

Each step is called through its CLI's ``main`` with folder arguments, exactly as an Azure ML pipeline
job calls it, so a local run exercises the same contract. The run is an MLflow parent run; the train
step's run is nested under it.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

from amlops import config, tracking
from amlops.files import read_json
from amlops.settings import ProjectSettings
from amlops.steps import evaluate, prep, register
from amlops.steps import train as train_step

log = logging.getLogger(__name__)

RUNCONFIG_FILE = "sklearn.runconfig"
STEPS = ("prep", "train", "evaluate", "register")


@dataclass(frozen=True)
class PipelineResult:
    """What a pipeline run produced."""

    run_id: str
    folder: Path
    fingerprint: dict
    training: dict
    decision: evaluate.Decision
    registration: dict


def run(
    data_path: Path | None = None,
    *,
    promote: bool = True,
    settings: ProjectSettings | None = None,
    runconfig_path: Path | None = None,
) -> PipelineResult:
    """Run the four steps in order and return their outputs.

    Args:
        data_path: CSV to train on; the committed snapshot when omitted.
        promote: Whether the register step may move the production marker.
        settings: Project settings; read from the environment when omitted.
        runconfig_path: Run configuration whose ``arguments`` hold the hyperparameters.
    """
    import mlflow

    settings = settings or ProjectSettings()
    runconfig = config.load_runconfig(runconfig_path or settings.root / RUNCONFIG_FILE)
    data_path = Path(data_path or settings.data_snapshot)
    tracking.configure(settings)
    with mlflow.start_run(run_name="training-pipeline", tags={"step": "pipeline"}) as parent:
        run_id = parent.info.run_id
        folder = settings.build_dir / "pipeline" / run_id
        outputs = {name: folder / name for name in STEPS}
        mlflow.log_params({"data": str(data_path), "runconfig_arguments": " ".join(runconfig.argv)})
        prepared, trained, decided = (str(outputs[name]) for name in ("prep", "train", "evaluate"))
        commands = {
            "prep": (prep.main, ["--data", str(data_path), "--out", prepared]),
            "train": (
                train_step.main,
                ["--data", prepared, "--out", trained, "--pipeline-run-id", run_id, *runconfig.argv],
            ),
            "evaluate": (evaluate.main, ["--model", trained, "--data", prepared, "--out", decided]),
            "register": (
                register.main,
                [
                    "--model",
                    trained,
                    "--decision",
                    decided,
                    "--data",
                    prepared,
                    "--out",
                    str(outputs["register"]),
                    "--pipeline-run-id",
                    run_id,
                    *([] if promote else ["--no-promote"]),
                ],
            ),
        }
        started = time.perf_counter()
        for number, (name, (main, argv)) in enumerate(commands.items(), start=1):
            log.info("pipeline: step %d/%d %s", number, len(commands), name)
            main(argv)
        decision = evaluate.load_decision(outputs["evaluate"])
        registration = read_json(outputs["register"] / register.REGISTRATION_FILE)
        mlflow.set_tags(
            {"decision": decision.outcome, "registered_version": registration["registered_version"] or "none"}
        )
        mlflow.log_artifacts(str(outputs["evaluate"]), artifact_path="evaluate")
        mlflow.log_metric("pipeline_seconds", time.perf_counter() - started)
    return PipelineResult(
        run_id=run_id,
        folder=folder,
        fingerprint=read_json(outputs["prep"] / prep.FINGERPRINT_FILE),
        training=read_json(outputs["train"] / train_step.INFO_FILE),
        decision=decision,
        registration=registration,
    )
