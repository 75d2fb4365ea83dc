"""Each step's function on real tiny data, apart from the pipeline that chains them."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from amlops.core import lineage
from amlops.ml import model
from amlops.ml.data import split
from amlops.steps import evaluate, prep, register
from amlops.steps import train as train_step
from tests.support.project import CONTRACT, project_build


@pytest.fixture(scope="module")
def splits(table: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    return split(table, test_size=0.2, seed=42)


def test_train_returns_train_and_test_metrics(splits):
    fitted, measured = model.fit_and_measure(project_build(), {"alpha": 1.0}, *splits, CONTRACT)
    assert set(measured) == {f"{part}_{m}" for part in ("train", "test") for m in CONTRACT.metric_names}
    assert 30 < measured["test_rmse"] < 70
    assert measured["train_r2"] > measured["test_r2"] - 0.2
    assert fitted.named_steps["ridge"].alpha == 1.0


def test_alpha_changes_the_model(splits):
    _, weak = model.fit_and_measure(project_build(), {"alpha": 1.0}, *splits, CONTRACT)
    _, strong = model.fit_and_measure(project_build(), {"alpha": 1000.0}, *splits, CONTRACT)
    assert strong["test_rmse"] > weak["test_rmse"]


def test_saved_model_round_trips_with_signature(tmp_path: Path, splits):
    fitted, _ = model.fit_and_measure(project_build(), {"alpha": 1.0}, *splits, CONTRACT)
    folder = model.save_mlflow_model(fitted, splits[0], tmp_path / "model", CONTRACT)
    loaded = model.load_mlflow_model(folder)
    rows = model.matrix(splits[1], CONTRACT)
    np.testing.assert_allclose(loaded.predict(rows), fitted.predict(rows), rtol=0, atol=0)
    mlmodel = (folder / "MLmodel").read_text()
    assert "serialization_format: skops" in mlmodel
    assert '"name": "length"' in mlmodel
    requirements = (folder / "requirements.txt").read_text()
    assert "scikit-learn==" in requirements
    assert "pytest" not in requirements


def test_plots_are_written(tmp_path: Path, splits):
    fitted, _ = model.fit_and_measure(project_build(), {"alpha": 1.0}, *splits, CONTRACT)
    paths = model.save_plots(fitted, splits[1], tmp_path, "t", CONTRACT)
    assert [p.suffix for p in paths] == [".png", ".png"]
    assert all(p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in paths)


def git_repository(folder: Path) -> Callable[..., str]:
    """A git repository in ``folder`` with one commit; returns ``git(*args)`` run there."""

    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=folder, check=True, capture_output=True, text=True).stdout

    folder.mkdir(parents=True, exist_ok=True)
    git("init", "-q")
    (folder / "f.txt").write_text("one")
    git("add", "f.txt")
    git("-c", "user.email=t@example.invalid", "-c", "user.name=t", "commit", "-qm", "one")
    return git


def test_git_commit_names_the_commit_and_dirtiness(tmp_path: Path):
    sha = git_repository(tmp_path)("rev-parse", "HEAD").strip()
    assert lineage.git_commit(tmp_path) == (sha, False)
    (tmp_path / "f.txt").write_text("two")
    assert lineage.git_commit(tmp_path) == (sha, True)


def test_a_staged_code_folder_keeps_the_commit_it_was_copied_from(tmp_path: Path):
    """An Azure ML job's code snapshot has no .git: the register step reads the commit recorded at staging."""
    repo, code = tmp_path / "repo", tmp_path / "code"
    sha = git_repository(repo)("rev-parse", "HEAD").strip()
    code.mkdir()
    lineage.record_source(code, repo)
    assert lineage.git_commit(code) == (sha, False)


def test_git_commit_outside_a_checkout(tmp_path: Path):
    assert lineage.git_commit(tmp_path) == ("uncommitted", True)


def test_lineage_tags_carry_the_build_id(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    monkeypatch.setenv("BUILD_BUILDID", "4242")
    decision = evaluate.decide({"rmse": 50.0, "mae": 40.0, "r2": 0.5}, None, CONTRACT)
    tags = register.lineage_tags(
        {"run_id": "r1", "params": {"alpha": 1.0}},
        decision,
        {"sha256": "ab" * 32, "rows": 400, "source": "/x/data.csv"},
        "p1",
        tmp_path,
    )
    assert tags["build_id"] == "4242"
    assert tags["data_sha256"] == "ab" * 32
    assert tags["pipeline_run_id"] == "p1"
    assert tags["metric.r2"] == "0.5"
    assert tags["decision"] == "register"


def test_register_does_nothing_when_the_decision_says_keep(project: Path, tmp_path: Path):
    from amlops.core.files import write_json
    from amlops.registry.mlflow import Registry

    decision = evaluate.decide(
        {"rmse": 50.0, "mae": 40.0, "r2": 0.5}, {"rmse": 49.0, "mae": 40.0, "r2": 0.5}, CONTRACT, "1"
    )
    write_json(tmp_path / "evaluate" / evaluate.DECISION_FILE, decision.__dict__)
    record = register.run(tmp_path / "train", tmp_path / "evaluate", tmp_path / "prep", tmp_path / "out")
    assert record["registered_version"] is None
    assert record["outcome"] == "keep"
    assert Registry().versions() == []


@pytest.fixture
def azureml_job(project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """The environment Azure ML gives a pipeline step, with a real MLflow store standing in for the workspace's.

    Returns a function that starts a step job of pipeline job ``name``: a run tagged ``mlflow.rootRunId``, as
    ``MLFLOW_RUN_ID``, in the project's experiment or in another one the job was submitted under.
    """
    import mlflow

    from amlops.core import tags
    from amlops.core.settings import ProjectSettings
    from amlops.registry import tracking

    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'workspace' / 'mlflow.db'}")
    monkeypatch.setenv("AZUREML_RUN_ID", "step-job")
    (tmp_path / "workspace").mkdir()
    experiment = tracking.configure(ProjectSettings())
    client = mlflow.MlflowClient(os.environ["MLFLOW_TRACKING_URI"])

    def step_job(pipeline_job: str | None, experiment_name: str | None = None) -> str:
        job_experiment = client.create_experiment(experiment_name) if experiment_name else experiment
        run = client.create_run(job_experiment, tags={tags.ROOT_RUN_TAG: pipeline_job} if pipeline_job else {})
        if pipeline_job is None:  # a standalone job is its own root
            client.set_tag(run.info.run_id, tags.ROOT_RUN_TAG, run.info.run_id)
        monkeypatch.setenv("MLFLOW_RUN_ID", run.info.run_id)
        return run.info.run_id

    return step_job


def test_a_version_registered_in_an_azure_ml_pipeline_step_names_the_pipeline_job(azureml_job, tmp_path: Path):
    """The register component gets no --pipeline-run-id on Azure: the lineage comes from its own job's run."""
    from amlops.registry.mlflow import Registry

    steps = tmp_path / "steps"
    azureml_job("pipeline-job-7")
    assert prep.main(["--out", str(steps / "prep")]) == 0
    assert train_step.main(project_build(), ["--data", str(steps / "prep"), "--out", str(steps / "train")]) == 0
    assert (
        evaluate.main(["--model", str(steps / "train"), "--data", str(steps / "prep"), "--out", str(steps / "ev")]) == 0
    )
    azureml_job("pipeline-job-7")  # the register step is a job of its own, in the same pipeline job
    folders = ["--model", str(steps / "train"), "--decision", str(steps / "ev"), "--data", str(steps / "prep")]
    assert register.main([*folders, "--out", str(steps / "register"), "--no-promote"]) == 0
    version = Registry().versions()[0]
    assert version.tags["pipeline_run_id"] == "pipeline-job-7"
    assert Registry().production() is None  # --no-promote, as on Azure
    # The job's local event log ends with it: its events travel in the step's output.
    carried = json.loads((steps / "register" / register.REGISTRATION_FILE).read_text())["events"]
    assert [(e["type"], e["version"]) for e in carried] == [("model.registered", version.version)]


def test_the_pipeline_job_is_only_named_inside_a_pipeline_step(azureml_job, monkeypatch: pytest.MonkeyPatch, caplog):
    from amlops.registry import tracking

    azureml_job(None)
    assert tracking.enclosing_pipeline_job() is None  # a standalone command job
    monkeypatch.setenv("MLFLOW_RUN_ID", "0123456789abcdef0123456789abcdef")
    assert tracking.enclosing_pipeline_job() is None  # a run the store does not know: warned, not fatal
    assert "pipeline_run_id is not recorded" in caplog.text
    azureml_job("pipeline-job-8")
    assert tracking.enclosing_pipeline_job() == "pipeline-job-8"
    monkeypatch.delenv("AZUREML_RUN_ID")
    assert tracking.enclosing_pipeline_job() is None  # not in an Azure ML job: MLflow is not asked


def test_a_job_submitted_under_another_experiment_logs_its_run_there(azureml_job, tmp_path: Path):
    """Azure ML creates the step's run in the job's experiment; the train step must not switch to the project's."""
    import mlflow

    steps = tmp_path / "steps"
    run_id = azureml_job(None, experiment_name="nightly-retraining")
    assert prep.main(["--out", str(steps / "prep")]) == 0
    assert train_step.main(project_build(), ["--data", str(steps / "prep"), "--out", str(steps / "train")]) == 0
    run = mlflow.get_run(run_id)
    assert mlflow.get_experiment(run.info.experiment_id).name == "nightly-retraining"
    assert "test_rmse" in run.data.metrics


def test_a_parameter_the_job_run_already_holds_is_not_logged_again(azureml_job, tmp_path: Path, caplog):
    """MLflow refuses to change a logged value: a job input the run holds as ``1`` is the ``1.0`` train.py used."""
    import mlflow

    client = mlflow.MlflowClient(os.environ["MLFLOW_TRACKING_URI"])
    steps = tmp_path / "steps"
    assert prep.main(["--out", str(steps / "prep")]) == 0
    train = ["--data", str(steps / "prep"), "--out", str(steps / "train"), "--alpha", "1"]

    same = azureml_job(None)
    client.log_param(same, "alpha", "1")  # as the job's input
    assert train_step.main(project_build(), train) == 0
    params = mlflow.get_run(same).data.params
    assert params["alpha"] == "1"
    assert "amlops.alpha" not in params
    assert params["estimator"] == "StandardScaler+Ridge"

    other = azureml_job(None)
    client.log_param(other, "alpha", "2")
    assert train_step.main(project_build(), train) == 0
    params = mlflow.get_run(other).data.params
    assert (params["alpha"], params["amlops.alpha"]) == ("2", "1.0")
    assert "parameter alpha: the run already holds '2'; this run used 1.0" in caplog.text
