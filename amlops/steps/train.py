"""Step ``train``: fit the user's estimator, log it to MLflow, save it as an MLflow model folder.

``train.py`` (``sklearn.runconfig``'s ``script``) defines ``build(**params)``, the unfitted estimator, and hands
it to :func:`main`; the hyperparameters are ``contract.yml``'s ``params``, one ``--<name>`` option each.

Inputs: ``--data`` (a ``prep`` output folder). Outputs (in ``--out``): ``model/`` (MLflow model folder),
``plots/``, ``train.json`` (run id, parameters, metrics).
"""

from __future__ import annotations

import argparse
import importlib.util
import logging
import shutil
from pathlib import Path
from typing import Any

from amlops.core.contract import Contract
from amlops.core.errors import BadInputError
from amlops.core.files import read_json, write_json
from amlops.core.settings import ProjectSettings
from amlops.ml import model as model_lib
from amlops.ml.metrics import line as metrics_line
from amlops.ml.model import Build
from amlops.registry import tracking
from amlops.steps import prep

log = logging.getLogger("amlops.steps.train")  # not __main__ when run with -m

MODEL_DIR = "model"
PLOTS_DIR = "plots"
INFO_FILE = "train.json"
#: The function ``train.py`` defines: ``build(**params)`` returns the unfitted estimator.
BUILD_FUNCTION = "build"


class TrainingScriptError(BadInputError):
    """``train.py`` cannot be loaded or does not define ``build``."""


def load_build(script: Path) -> Build:
    """``build`` from a training script, imported as a module (its ``__main__`` block does not run).

    Raises:
        TrainingScriptError: naming the file, when it is missing or defines no ``build`` function.
    """
    script = Path(script)
    if not script.is_file():
        raise TrainingScriptError(f"{script}: no training script (sklearn.runconfig's script names it)")
    spec = importlib.util.spec_from_file_location(f"amlops_training_script_{script.stem}", script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    build = getattr(module, BUILD_FUNCTION, None)
    if not callable(build):
        raise TrainingScriptError(
            f"{script}: defines no {BUILD_FUNCTION}(**params) function returning the unfitted estimator "
            "(docs/your-model.md)"
        )
    return build


def run(
    prepared: Path,
    out: Path,
    build: Build,
    params: dict[str, Any],
    contract: Contract,
    pipeline_run_id: str | None = None,
) -> dict:
    """Train on a ``prep`` output folder, log to the active MLflow tracking server, write ``out``.

    Args:
        prepared: Folder written by the ``prep`` step.
        out: Folder to write the model, plots and ``train.json`` into.
        build: ``train.py``'s ``build``.
        params: The hyperparameters, every one the contract declares.
        contract: The data and model contract.
        pipeline_run_id: MLflow run id of the enclosing pipeline run, recorded as the parent.

    Returns:
        The record written to ``train.json``.
    """
    import mlflow

    prepared, out = Path(prepared), Path(out)
    train_frame, test_frame = prep.load_splits(prepared)
    data_record = read_json(prepared / prep.FINGERPRINT_FILE)
    fitted, measured = model_lib.fit_and_measure(build, params, train_frame, test_frame, contract)

    model_dir = out / MODEL_DIR
    if model_dir.exists():
        shutil.rmtree(model_dir)
    out.mkdir(parents=True, exist_ok=True)
    model_lib.save_mlflow_model(fitted, train_frame, model_dir, contract)
    described = ", ".join(f"{name}={value}" for name, value in params.items())
    title = f"{type(fitted).__name__}({described}) on the test split"
    plots = model_lib.save_plots(fitted, test_frame, out / PLOTS_DIR, title, contract)

    tags = {"step": "train", "data_sha256": data_record["sha256"]}
    if pipeline_run_id:
        tags["mlflow.parentRunId"] = pipeline_run_id
    with mlflow.start_run(run_name="train", tags=tags, nested=bool(pipeline_run_id)) as active:
        tracking.log_params_once(
            {
                **params,
                "estimator": _describe(fitted),
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
        "params": params,
        "metrics": measured,
        "data_sha256": data_record["sha256"],
    }
    write_json(out / INFO_FILE, record)
    test = {name.removeprefix("test_"): value for name, value in measured.items() if name.startswith("test_")}
    log.info("train: %s: test %s (MLflow run %s)", described or "defaults", metrics_line(test), run_id)
    return record


def _describe(estimator) -> str:
    """The estimator's class names, the steps of a pipeline joined with ``+`` (``StandardScaler+Ridge``)."""
    steps = getattr(estimator, "steps", None)
    if steps:
        return "+".join(type(step).__name__ for _, step in steps)
    return type(estimator).__name__


def parser(contract: Contract) -> argparse.ArgumentParser:
    """Command-line interface of the step: one ``--<name>`` per hyperparameter of the contract."""
    cli = argparse.ArgumentParser(prog="train.py", description=__doc__.splitlines()[0])
    cli.add_argument("--data", type=Path, required=True, help="folder written by the prep step")
    cli.add_argument("--out", type=Path, required=True, help="output folder")
    cli.add_argument("--pipeline-run-id", default=None, help="MLflow run id of the enclosing pipeline run")
    for name, param in contract.params.items():
        flags = dict.fromkeys([f"--{name}", f"--{name.replace('_', '-')}"])  # --max_iter or --max-iter
        cli.add_argument(*flags, dest=f"param_{name}", default=None, help=f"{param.help} (default: {param.default})")
    return cli


def main(build: Build, argv: list[str] | None = None) -> int:
    """Entry point of ``train.py``: ``python train.py --data prepared/ --out trained/ [--<param> VALUE ...]``."""
    contract = ProjectSettings().contract
    args = parser(contract).parse_args(argv)
    given = {name: getattr(args, f"param_{name}") for name in contract.params}
    params = contract.hyperparameters({name: value for name, value in given.items() if value is not None})
    tracking.configure()
    run(args.data, args.out, build, params, contract, pipeline_run_id=args.pipeline_run_id)
    return 0


def script_main(script: Path, argv: list[str] | None = None) -> int:
    """The step with the ``build`` of a training script: what the pipeline runs for ``sklearn.runconfig``."""
    return main(load_build(script), argv)
