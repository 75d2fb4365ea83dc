"""The training pipeline against a real (temporary) MLflow registry: lineage, gate outcomes, failures."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from amlops.cli.main import main as cli_main
from amlops.core.errors import EXIT_BAD_INPUT
from amlops.core.files import read_json
from amlops.lifecycle import pipeline
from amlops.lifecycle.efficacy import check_efficacy
from amlops.ml.data import DataValidationError, write_csv_with_sha256
from amlops.registry.mlflow import Registry
from amlops.steps import train as train_step
from tests.support.project import CONTRACT, edit_contract

pytestmark = pytest.mark.integration


def _set_alpha(project: Path, alpha: float) -> None:
    runconfig = project / "sklearn.runconfig"
    text = re.sub(r"arguments: \[[^\]]*\]", f"arguments: [--alpha, {alpha}]", runconfig.read_text())
    assert f"arguments: [--alpha, {alpha}]" in text
    runconfig.write_text(text)


def test_first_run_registers_and_promotes_with_lineage(project: Path):
    result = pipeline.run()
    assert result.decision.outcome == "register"
    assert result.registration["registered_version"] == result.registration["production_version"] == "1"

    registry = Registry()
    production = registry.production()
    assert production.version == "1"
    tags = production.tags
    assert tags["data_sha256"] == (project / "data" / "tiny.csv.sha256").read_text().split()[0]
    assert tags["pipeline_run_id"] == result.run_id
    assert tags["train_run_id"] == result.training["run_id"]
    assert tags["param.alpha"] == "1.0"
    assert tags["decision"] == "register"
    assert tags["git_commit"] == "uncommitted"  # the temporary project is not a git checkout
    assert float(tags["metric.rmse"]) == pytest.approx(result.decision.candidate["rmse"], rel=1e-5)
    assert production.metrics.keys() == {"rmse", "mae", "r2"}

    for step in pipeline.STEPS:
        assert (result.folder / step).is_dir()
    assert (result.folder / "train" / "plots" / "predicted_vs_actual_and_residuals.png").stat().st_size > 10_000
    assert read_json(result.folder / "evaluate" / "decision.json")["outcome"] == "register"


def test_mlflow_holds_params_metrics_model_and_plots(project: Path):
    import mlflow

    result = pipeline.run()
    run = mlflow.get_run(result.training["run_id"])
    assert run.data.params["alpha"] == "1.0"
    assert {"test_rmse", "test_mae", "test_r2", "train_rmse"} <= run.data.metrics.keys()
    assert run.data.tags["mlflow.parentRunId"] == result.run_id
    artifacts = {a.path for a in mlflow.MlflowClient().list_artifacts(run.info.run_id)}
    assert {"model", "plots"} <= artifacts
    model_files = {Path(a.path).name for a in mlflow.MlflowClient().list_artifacts(run.info.run_id, "model")}
    assert {"MLmodel", "model.skops", "input_example.json", "requirements.txt"} <= model_files
    # Explicit artifact location: nothing lands in ./mlruns.
    assert str(project / ".mlops" / "artifacts") in run.info.artifact_uri
    assert not (project / "mlruns").exists()


def test_training_is_deterministic(project: Path):
    first = pipeline.run()
    second = pipeline.run()
    assert first.training["metrics"] == second.training["metrics"]


def test_second_identical_run_keeps_production(project: Path):
    pipeline.run()
    again = pipeline.run()
    assert again.decision.outcome == "keep"
    assert again.registration["registered_version"] is None
    assert again.registration["production_version"] == "1"
    assert [v.version for v in Registry().versions()] == ["1"]


def test_a_better_model_replaces_production_and_a_worse_one_does_not(project: Path):
    _set_alpha(project, 500.0)  # heavily over-regularised: worse, but above the floors
    first = pipeline.run()
    assert first.registration["production_version"] == "1"

    _set_alpha(project, 1.0)
    better = pipeline.run()
    assert better.decision.outcome == "register"
    assert better.decision.candidate["rmse"] < better.decision.production["rmse"]
    assert better.registration["production_version"] == "2"
    assert Registry().get("2").tags["replaced_version"] == "1"

    _set_alpha(project, 500.0)
    worse = pipeline.run()
    assert worse.decision.outcome == "keep"
    assert worse.registration["production_version"] == "2"


def test_a_model_below_the_floors_is_never_registered(project: Path):
    edit_contract(project, gate={"limits": {"r2": {"min": 0.99}}})
    result = pipeline.run()
    assert result.decision.outcome == "reject"
    assert Registry().versions() == []
    assert Registry().production() is None


def test_no_promote_registers_without_moving_production(project: Path):
    pipeline.run(promote=False)
    registry = Registry()
    assert [v.version for v in registry.versions()] == ["1"]
    assert registry.production() is None


def test_bad_data_stops_the_pipeline_and_registers_nothing(project: Path, table: pd.DataFrame):
    pipeline.run()
    bad = table.copy()
    bad.loc[7, "width"] = np.nan
    bad_path = project / "bad.csv"
    bad.to_csv(bad_path, index=False)
    with pytest.raises(DataValidationError, match="'width'"):
        pipeline.run(bad_path)
    assert [v.version for v in Registry().versions()] == ["1"]
    assert Registry().production().version == "1"


def test_runconfig_arguments_reach_train(project: Path):
    _set_alpha(project, 3.5)
    result = pipeline.run()
    assert result.training["params"] == {"alpha": 3.5}


def test_a_runconfig_error_names_file_and_field(project: Path):
    (project / "sklearn.runconfig").write_text((project / "sklearn.runconfig").read_text() + "nodeCount: zero\n")
    with pytest.raises(ValueError, match=r"sklearn.runconfig: field 'nodeCount'"):
        pipeline.run()


def test_train_py_runs_as_a_script(project: Path, tmp_path: Path):
    """``train.py`` is the runconfig's script: it must run standalone on a prep output folder."""
    from amlops.steps import prep

    prep.run(project / "data" / "tiny.csv", tmp_path / "prepared")
    done = subprocess.run(
        [
            sys.executable,
            str(project / "train.py"),
            "--data",
            str(tmp_path / "prepared"),
            "--out",
            str(tmp_path / "trained"),
            "--alpha",
            "2.0",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    record = read_json(tmp_path / "trained" / train_step.INFO_FILE)
    assert record["params"] == {"alpha": 2.0}
    assert (tmp_path / "trained" / "model" / "MLmodel").is_file()
    assert (project / ".mlops" / "mlflow.db").is_file()


def test_a_new_hyperparameter_needs_only_the_contract_and_train_py(project: Path):
    """Declare it in contract.yml, take it in build(): the CLI, the run configuration and MLflow follow."""
    edit_contract(
        project,
        params={
            "alpha": {"type": "float", "default": 1.0},
            "solver": {"type": "str", "default": "auto", "help": "Ridge's solver"},
        },
    )
    script = project / "train.py"
    script.write_text(
        script.read_text()
        .replace("def build(alpha: float)", "def build(alpha: float, solver: str)")
        .replace("Ridge(alpha=alpha)", "Ridge(alpha=alpha, solver=solver)")
    )
    result = pipeline.run(params={"solver": "svd"})
    assert result.training["params"] == {"alpha": 1.0, "solver": "svd"}
    assert Registry().get(result.registration["registered_version"]).tags["param.solver"] == "svd"


@pytest.mark.parametrize(
    ("params", "named"),
    [
        ({"n_estimators": 10}, "unknown hyperparameter(s) n_estimators; contract.yml declares: alpha"),
        ({"alpha": "strong"}, "hyperparameter alpha: expected a value of type float, got 'strong'"),
    ],
)
def test_a_wrong_hyperparameter_is_named_before_any_work(project: Path, params: dict, named: str):
    from amlops.core.contract import ContractError

    with pytest.raises(ContractError, match=re.escape(named)):
        pipeline.run(params=params)
    assert not (project / "build" / "pipeline").exists()


def test_a_train_py_without_build_is_named_before_any_work(project: Path):
    from amlops.steps.train import TrainingScriptError

    (project / "train.py").write_text("from sklearn.linear_model import Ridge\n\nmodel = Ridge()\n")
    with pytest.raises(TrainingScriptError, match=r"train\.py: defines no build\(\*\*params\) function"):
        pipeline.run()
    assert not (project / "build" / "pipeline").exists()


def _declare(project: Path, table: pd.DataFrame, features: list[dict]) -> Path:
    """contract.yml's features replaced, and the snapshot rewritten with exactly those columns and the target."""
    edit_contract(project, features=features)
    names = [feature["name"] for feature in features]
    path = project / CONTRACT.data
    write_csv_with_sha256(table[[*names, CONTRACT.target.name]], path)
    return path


def test_a_feature_added_to_the_contract_is_judged_against_production_on_its_own_columns(
    project: Path, table: pd.DataFrame
):
    first = pipeline.run()
    features = [column.model_dump(exclude_none=True) for column in CONTRACT.features]
    table = table.assign(noise=np.random.default_rng(3).uniform(0, 1, len(table)))
    _declare(project, table, [*features, {"name": "noise", "range": [0, 1]}])
    decision = pipeline.run().decision
    # The same rows (same seed, same row count), and v1 scored on the five columns it takes: its own numbers.
    assert decision.production == pytest.approx(first.decision.candidate)
    assert decision.production_version == "1"
    assert "the endpoint's requests change: production v1 takes 5 columns, the candidate 6 (with noise)" in (
        decision.reasons
    )


def test_a_feature_dropped_from_the_contract_leaves_the_candidate_to_the_limits(project: Path, table: pd.DataFrame):
    pipeline.run()
    features = [column.model_dump(exclude_none=True) for column in CONTRACT.features if column.name != "weight"]
    snapshot = _declare(project, table, features)

    # v1 takes weight: its efficacy cannot be measured on data without it, and says so.
    assert cli_main(["models", "check", "--data", str(snapshot)]) == EXIT_BAD_INPUT
    with pytest.raises(DataValidationError, match=r"column 'weight': column_in_dataframe \(v1 takes it\)"):
        check_efficacy(Registry(), snapshot)

    result = pipeline.run()
    decision = result.decision
    assert (decision.outcome, decision.production, decision.production_version) == ("register", None, "1")
    assert decision.reasons[0].startswith("judged on the limits alone; limits met")
    assert decision.reasons[1:] == [
        "production v1 takes columns the data no longer has: weight",
        "the endpoint's requests change: production v1 takes 5 columns, the candidate 4 (without weight)",
    ]
    assert result.registration["production_version"] == "2"
