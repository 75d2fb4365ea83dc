"""The CLI's target selection and published pipelines, as users call them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from amlops.cli.commands import versions_table
from amlops.cli.main import main
from amlops.core.errors import EXIT_BAD_INPUT
from amlops.registry.base import Version
from tests.support.project import CONTRACT


@pytest.fixture
def no_workspace(project: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    from amlops.app import workflow
    from amlops.azure.connection import WORKSPACE_VARIABLES

    for name in (*WORKSPACE_VARIABLES, "AMLOPS_AZURE_WORKSPACE_CONFIG", "AMLOPS_TARGET"):
        monkeypatch.delenv(name, raising=False)
    workflow._azure.cache_clear()
    return project


@pytest.mark.parametrize("command", [["pipeline", "run"], ["pipeline", "publish"], ["models", "show"]])
def test_target_azure_without_a_workspace_says_what_to_provide(no_workspace, command, caplog):
    assert main([*command, "--target", "azure"]) == EXIT_BAD_INPUT
    assert "config.json in the project root" in caplog.text


def test_the_default_target_comes_from_the_environment(no_workspace, monkeypatch, caplog):
    monkeypatch.setenv("AMLOPS_TARGET", "azure")
    assert main(["pipeline", "run"]) == EXIT_BAD_INPUT
    assert "config.json in the project root" in caplog.text


def test_an_unknown_target_in_the_environment_is_named(no_workspace, monkeypatch, caplog):
    monkeypatch.setenv("AMLOPS_TARGET", "cloud")
    assert main(["pipeline", "run"]) == EXIT_BAD_INPUT
    assert "AMLOPS_TARGET='cloud'" in caplog.text


def test_a_bad_setting_names_its_variable_and_other_errors_keep_their_traceback(monkeypatch, caplog):
    from amlops.core.azure_settings import AzureSettings
    from amlops.core.logs import guarded

    monkeypatch.setenv("AMLOPS_AZURE_CREDENTIAL_TIMEOUT", "-1")
    assert guarded(lambda: AzureSettings() and 0) == EXIT_BAD_INPUT
    assert "environment variable AMLOPS_AZURE_CREDENTIAL_TIMEOUT='-1': Input should be greater than 0" in caplog.text

    def fails() -> int:
        raise ValueError("a bug")

    with pytest.raises(ValueError, match="a bug"):
        guarded(fails)


def test_a_workspace_config_json_names_the_workspace_but_does_not_choose_the_target(no_workspace, capsys, caplog):
    """A config.json in the root does not choose Azure: a downloaded config.json must not send `make run` to Azure."""
    from amlops.app import targets

    targets._say_local_once.cache_clear()
    (no_workspace / "config.json").write_text('{"subscription_id": "s", "resource_group": "r", "workspace_name": "w"}')
    caplog.set_level("INFO", logger="amlops")
    assert main(["models", "list"]) == 0
    assert main(["models", "list"]) == 0
    assert caplog.text.count("config.json names an Azure ML workspace; this runs locally") == 1
    caplog.clear()
    targets._say_local_once.cache_clear()
    assert main(["models", "list", "--target", "local"]) == 0  # an explicit choice needs no notice
    assert "names an Azure ML workspace" not in caplog.text


@pytest.mark.parametrize("command", [["models", "list"], ["models", "show"], ["pipeline", "run"]])
def test_naming_a_workspace_config_chooses_azure(no_workspace, command, caplog):
    """`--workspace-config` is the explicit Azure choice: the named file is read (here: it lacks a field)."""
    config = no_workspace / "dev.json"
    config.write_text('{"subscription_id": "s", "resource_group": "r"}')
    assert main([*command, "--workspace-config", str(config)]) == EXIT_BAD_INPUT
    assert "dev.json: field(s) workspace_name missing" in caplog.text


def test_a_workspace_config_with_target_local_is_a_contradiction(no_workspace, caplog):
    assert main(["models", "list", "--target", "local", "--workspace-config", "dev.json"]) == EXIT_BAD_INPUT
    assert "names an Azure ML workspace, and --target is local" in caplog.text


@pytest.mark.integration
def test_publish_then_rerun_a_published_version_with_another_alpha(no_workspace, capsys):
    assert main(["pipeline", "publish"]) == 0
    published = json.loads(capsys.readouterr().out)
    assert (published["name"], published["version"]) == (f"{CONTRACT.name}-training", 1)
    assert main(["pipeline", "publish"]) == 0  # unchanged: same version
    assert json.loads(capsys.readouterr().out)["version"] == 1
    assert main(["pipeline", "run", "--published", f"{CONTRACT.name}-training:1"]) == 0
    first = json.loads(capsys.readouterr().out)
    assert first["outcome"] == "register"
    assert main(["pipeline", "run", "--published", f"{CONTRACT.name}-training", "--param", "alpha=1000"]) == 0
    worse = json.loads(capsys.readouterr().out)
    assert worse["outcome"] == "keep"
    assert worse["production_version"] == "1"
    assert main(["pipeline", "run", "--published", f"{CONTRACT.name}-training:7"]) == EXIT_BAD_INPUT


@pytest.mark.integration
def test_a_published_version_runs_the_code_it_was_published_with(no_workspace: Path, capsys, caplog):
    import mlflow

    from amlops.core.settings import ProjectSettings
    from amlops.lifecycle import pipeline

    assert main(["pipeline", "publish"]) == 0
    published = json.loads(capsys.readouterr().out)
    snapshot = pipeline.snapshot_dir(ProjectSettings(), published["name"], 1)
    assert (snapshot / "amlops" / "lifecycle" / "pipeline.py").is_file()
    assert (snapshot / "sklearn.runconfig").read_bytes() == (no_workspace / "sklearn.runconfig").read_bytes()

    # The checkout moves on after publishing: the published version still runs what was published.
    runconfig = no_workspace / "sklearn.runconfig"
    runconfig.write_text(runconfig.read_text() + "# edited after publishing\n")
    assert pipeline.code_fingerprint(ProjectSettings()) != published["code_sha256"]
    assert main(["pipeline", "run", "--published", published["name"]]) == 0
    outcome = json.loads(capsys.readouterr().out)
    tags = mlflow.MlflowClient().get_run(outcome["run_id"]).data.tags
    assert tags["code_sha256"] == published["code_sha256"]
    assert (tags["published_pipeline"], tags["published_version"]) == (published["name"], "1")
    assert "changed since it was published" not in caplog.text

    (snapshot / "amlops" / "lifecycle" / "pipeline.py").write_text("raise SystemExit('not the published code')\n")
    assert main(["pipeline", "run", "--published", published["name"]]) == EXIT_BAD_INPUT
    assert "does not match the sha256 recorded when it was published" in caplog.text


@pytest.mark.integration
def test_a_published_version_keeps_the_contract_it_was_published_with(no_workspace: Path, capsys, caplog):
    from amlops.core.settings import ProjectSettings
    from amlops.lifecycle import pipeline

    assert main(["pipeline", "publish"]) == 0
    published = json.loads(capsys.readouterr().out)
    contract_file = no_workspace / "contract.yml"
    snapshot = pipeline.snapshot_dir(ProjectSettings(), published["name"], 1)
    assert (snapshot / "contract.yml").read_bytes() == contract_file.read_bytes()

    # The root's contract then narrows a column's range: the snapshot's data no longer passes it.
    narrowed = contract_file.read_text().replace("{name: length, range: [0, 100]}", "{name: length, range: [0, 1]}")
    assert narrowed != contract_file.read_text()
    contract_file.write_text(narrowed)
    assert main(["pipeline", "run"]) == EXIT_BAD_INPUT
    assert "length" in caplog.text
    caplog.clear()
    capsys.readouterr()
    assert main(["pipeline", "run", "--published", published["name"], "--param", "alpha=0.5"]) == 0
    assert json.loads(capsys.readouterr().out)["run_id"]
    # A changed contract is a changed definition: publishing again makes version 2.
    assert main(["pipeline", "publish"]) == 0
    assert json.loads(capsys.readouterr().out)["version"] == 2


@pytest.mark.integration
def test_a_failing_published_run_exits_with_its_own_code(no_workspace: Path, capsys, caplog):
    assert main(["pipeline", "publish"]) == 0
    capsys.readouterr()
    missing = no_workspace / "data" / "no-such.csv"
    assert (
        main(["pipeline", "run", "--published", f"{CONTRACT.name}-training", "--data", str(missing)]) == EXIT_BAD_INPUT
    )
    assert "failed (exit code 2)" in caplog.text


def test_models_list_gives_each_metric_a_column_as_wide_as_its_name():
    """A classifier's balanced_accuracy ran into the column before it (``accuracybalanced_accuracy``)."""
    names = ("f1_macro", "accuracy", "balanced_accuracy", "log_loss")
    tags = {"metric.accuracy": "0.9722", "metric.balanced_accuracy": "0.9762", "production": "true"}
    table = versions_table([Version("wine", "12", None, "s", tags=tags)], names).splitlines()
    header, row = table[0].split(), table[1].split()
    assert header[2:6] == list(names)
    assert row[:2] == ["12", "*"]
    assert row[2:6] == ["nan", "0.9722", "0.9762", "nan"]
    for name in ("accuracy", "balanced_accuracy"):  # each value ends where its name does
        end = table[0].index(f" {name} ") + len(name) + 1
        assert table[1][:end].rstrip().endswith(tags[f"metric.{name}"])
