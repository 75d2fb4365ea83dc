"""Step ``train`` (``train.py``): fit the model, log it to MLflow, save it as an MLflow model folder.

Inputs: ``--data`` (a ``prep`` output folder). Outputs (in ``--out``): ``model/`` (MLflow model folder),
``plots/``, ``train.json`` (run id, parameters, metrics).
"""

from __future__ import annotations

import argparse
import logging
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from amlops.core.files import read_json, write_json
from amlops.core.logs import run_step
from amlops.ml import model as model_lib
from amlops.registry import tracking
from amlops.steps import prep

if TYPE_CHECKING:
    from sklearn.pipeline import Pipeline

log = logging.getLogger("amlops.steps.train")  # not __main__ when run with -m

MODEL_DIR = "model"
PLOTS_DIR = "plots"
INFO_FILE = "train.json"
DEFAULT_ALPHA = 1.0


def train(train_frame: pd.DataFrame, test_frame: pd.DataFrame, alpha: float) -> tuple[Pipeline, dict[str, float]]:
    """Fit on the train table and measure on both tables.

    Returns:
        The fitted model and metrics named ``train_<m>`` and ``test_<m>`` for each of rmse, mae, r2.
    """
    return model_lib.fit_and_measure(train_frame, test_frame, alpha)


def run(prepared: Path, out: Path, alpha: float = DEFAULT_ALPHA, pipeline_run_id: str | None = None) -> dict:
    """Train on a ``prep`` output folder, log to the active MLflow tracking server, write ``out``.

    Args:
        prepared: Folder written by the ``prep`` step.
        out: Folder to write the model, plots and ``train.json`` into.
        alpha: Ridge regularisation strength.
        pipeline_run_id: MLflow run id of the enclosing pipeline run, recorded as the parent.

    Returns:
        The record written to ``train.json``.
    """
    import mlflow

    prepared, out = Path(prepared), Path(out)
    train_frame, test_frame = prep.load_splits(prepared)
    data_record = read_json(prepared / prep.FINGERPRINT_FILE)
    fitted, measured = train(train_frame, test_frame, alpha)

    model_dir = out / MODEL_DIR
    if model_dir.exists():
        shutil.rmtree(model_dir)
    out.mkdir(parents=True, exist_ok=True)
    model_lib.save_mlflow_model(fitted, train_frame, model_dir)
    plots = model_lib.save_plots(fitted, test_frame, out / PLOTS_DIR, title=f"Ridge(alpha={alpha}) on the test split")

    tags = {"step": "train", "data_sha256": data_record["sha256"]}
    if pipeline_run_id:
        tags["mlflow.parentRunId"] = pipeline_run_id
    with mlflow.start_run(run_name="train", tags=tags, nested=bool(pipeline_run_id)) as active:
        mlflow.log_params(
            {
                "alpha": alpha,
                "model": "StandardScaler+Ridge",
                "train_rows": len(train_frame),
                "test_rows": len(test_frame),
                "data_sha256": data_record["sha256"],
            }
        )
        mlflow.log_metrics(measured)
        # Save-then-log-artifacts (not log_model): works against Azure ML's MLflow endpoint too.
        mlflow.log_artifacts(str(model_dir), artifact_path=MODEL_DIR)
        for plot in plots:
            mlflow.log_artifact(str(plot), artifact_path=PLOTS_DIR)
        run_id = active.info.run_id
        artifact_uri = active.info.artifact_uri

    record = {
        "run_id": run_id,
        "model_uri": f"{artifact_uri}/{MODEL_DIR}",
        "params": {"alpha": alpha},
        "metrics": measured,
        "data_sha256": data_record["sha256"],
    }
    write_json(out / INFO_FILE, record)
    log.info(
        "train: alpha=%s test rmse=%.3f r2=%.4f (MLflow run %s)",
        alpha,
        measured["test_rmse"],
        measured["test_r2"],
        run_id,
    )
    return record


def parser() -> argparse.ArgumentParser:
    """Command-line interface of the step; ``sklearn.runconfig``'s ``arguments`` are parsed by it."""
    cli = argparse.ArgumentParser(prog="train.py", description=__doc__.splitlines()[0])
    cli.add_argument("--data", type=Path, required=True, help="folder written by the prep step")
    cli.add_argument("--out", type=Path, required=True, help="output folder")
    cli.add_argument("--alpha", type=float, default=DEFAULT_ALPHA, help="Ridge regularisation strength")
    cli.add_argument("--pipeline-run-id", default=None, help="MLflow run id of the enclosing pipeline run")
    return cli


def main(argv: list[str] | None = None) -> int:
    """Entry point: ``python train.py --data prepared/ --out trained/ --alpha 0.5``."""
    args = parser().parse_args(argv)
    tracking.configure()
    run(args.data, args.out, alpha=args.alpha, pipeline_run_id=args.pipeline_run_id)
    return 0


if __name__ == "__main__":
    raise SystemExit(run_step(main))
