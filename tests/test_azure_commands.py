"""Every command that calls Azure ML, run end to end from the command line against one fake workspace.

The workspace stands where ``amlops.azure.connection.connect`` would return an ``MLClient``: the one seam. Its
parts are the fakes of ``tests/support``: endpoints that serve the registered models with the project's scoring
code, jobs validated by the SDK's own offline checks, schedules that pin a data label as the SDK does, data
assets on a datastore read back through the storage SDK's calls. The last test holds the rule: every ``azure``
subcommand has a run here.
"""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path
from types import SimpleNamespace

import pytest

from amlops.azure import translate
from amlops.cli.main import main
from amlops.core.names import STAGES
from amlops.registry import events
from tests.support.checkout import REPO
from tests.support.fakes import KEY, MODEL, FakeCloud, TaggedModels
from tests.support.project import CONTRACT
from tests.support.workspace import JobModels, fake_workspace, training_job_outputs

pytestmark = [
    pytest.mark.filterwarnings("ignore::marshmallow.warnings.ChangedInMarshmallow4Warning"),
    pytest.mark.filterwarnings("ignore::marshmallow.warnings.RemovedInMarshmallow4Warning"),
]


@pytest.fixture
def workspace(project: Path, azure_models: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    import shutil

    for stage in STAGES.values():  # the committed deployment configs, with the test project's contract
        shutil.copy2(REPO / stage.config_file, project / stage.config_file)
    cloud = FakeCloud({k: v for k, v in azure_models.items() if k != "wrong"}, azure_models["wrong"])
    models = JobModels(TaggedModels(cloud.models), azure_models["2"])
    outputs = training_job_outputs(project, tmp_path / "job", registered_version="2")  # its register step did
    client = fake_workspace(cloud, models, outputs, tmp_path / "storage", "sqlite:///unused-by-these-commands.db")
    monkeypatch.setattr("amlops.azure.connection.connect", lambda config=None: client)
    monkeypatch.setattr("azure.storage.blob.ContainerClient", client.blobs)
    yield SimpleNamespace(client=client, cloud=cloud, outputs=outputs)
    cloud.close()


def run(*argv: str) -> int:
    return main(list(argv))


def test_check_finds_the_workspace_and_the_computes_the_files_name(workspace, capsys):
    assert run("azure", "check") == 0
    out = capsys.readouterr().out
    assert "workspace ws-test in westeurope (resource group rg-test)" in out
    assert "ok      training compute (train.py): cpu-cluster" in out
    assert "ok      Kubernetes compute" in out
    del workspace.client.compute.computes["k8s-compute"]
    assert run("azure", "check") == 1
    assert "MISSING Kubernetes compute" in capsys.readouterr().out


def test_submit_follows_the_pipeline_and_reports_its_decision(workspace, capsys):
    assert run("azure", "submit", "--poll-seconds", "0") == 0
    out = capsys.readouterr().out
    assert "job job-42 Completed" in out
    assert "decision: register; registered version: 2" in out
    submitted = [call[1] for call in workspace.client.jobs.calls if call[0] == "create_or_update"]
    assert submitted[-1].type == "pipeline"
    assert run("azure", "submit", "--job", "train", "--no-wait") == 0
    assert workspace.client.jobs.calls[-1][1].type == "command"


def test_data_publish_and_reruns_of_the_published_pipeline(workspace, project: Path, capsys):
    files = translate.Project.load()
    asset = translate.data_asset_name(files)
    assert run("azure", "register-data", str(project / CONTRACT.data)) == 0
    assert (
        run("azure", "publish", "--version", "5", "--schedule", "0 6 * * 1", "--data", f"azureml:{asset}@latest") == 0
    )
    out = capsys.readouterr().out
    assert f"scheduled runs train on azureml:{asset}:1" in out
    assert f"published pipeline component {files.pipeline_name}:5" in out
    kept = workspace.client.schedules.get(translate.schedule_name(files))
    assert (kept.create_job.data, kept.is_enabled) == (f"azureml:{asset}:1", False)

    assert run("pipeline", "publish", "--target", "azure", "--param", "alpha=0.5") == 0
    registered, _ = workspace.client.components.calls[-1]
    assert float(registered.inputs["alpha"].default) == 0.5
    published = ["--published", files.pipeline_name, "--param", "alpha=0.25", "--data", f"azureml:{asset}@latest"]
    assert run("pipeline", "run", *published, "--target", "azure") == 0
    rerun = next(call[1] for call in reversed(workspace.client.jobs.calls) if call[0] == "create_or_update")
    assert rerun.inputs["alpha"]._data == 0.25
    assert rerun.inputs["data"]._data.path == f"azureml:{asset}@latest"
    assert run("pipeline", "run", "--target", "azure") == 0


def test_register_model_from_a_job(workspace, capsys):
    from amlops.core.files import read_json, write_json
    from amlops.steps import register

    registration = workspace.outputs["registration"] / register.REGISTRATION_FILE
    assert run("azure", "register-model", "--job", "job-42") == 1  # its register step registered version 2
    write_json(registration, read_json(registration) | {"registered_version": None})
    assert run("azure", "register-model", "--job", "job-42") == 0
    assert f"registered model {MODEL}:3 from job job-42" in capsys.readouterr().out
    assert workspace.client.models.tagged.tags["3"]["pipeline_run_id"] == "job-42"
    assert workspace.client.models.tagged.tags["3"]["git_commit"] == "abc123"


def test_a_release_through_both_stages_and_back(workspace, capsys):
    """deploy → smoke → deploy prod (kept old) → promote → rollback → deploy → cleanup → endpoint, as a release does."""
    quick = ["--step-seconds", "0"]
    assert run("azure", "deploy", "--stage", "preprod", "--version", "1", "--deployment-name", "blue", *quick) == 0
    assert run("azure", "smoke", "--stage", "preprod") == 0
    assert f"smoke test passed: preprod serves {MODEL}:1" in capsys.readouterr().out
    assert run("azure", "deploy", "--stage", "prod", "--version", "1", "--deployment-name", "blue", *quick) == 0
    assert run("azure", "promote", "--version", "1") == 0
    prod = f"{MODEL}-prod"
    release = ["--version", "2", "--deployment-name", "green", "--traffic-steps", "50,100", "--keep-old", *quick]
    assert run("azure", "deploy", "--stage", "prod", *release) == 0
    assert workspace.cloud.endpoints[prod].traffic == {"blue": 0, "green": 100}
    assert run("azure", "rollback", "--stage", "prod") == 0
    assert workspace.cloud.endpoints[prod].traffic == {"blue": 100, "green": 0}
    assert "rolled back: blue serves" in capsys.readouterr().out
    assert run("azure", "deploy", "--stage", "prod", *release) == 1  # a release never reuses a deployment's name
    release[release.index("green")] = "green2"
    assert run("azure", "deploy", "--stage", "prod", *release) == 0
    assert run("azure", "promote", "--version", "2") == 0
    assert run("azure", "cleanup", "--stage", "prod") == 0
    assert set(workspace.cloud.deployments[prod]) == {"green2"}
    assert [e["version"] for e in events.read_events() if e["type"] == "model.promoted"] == ["1", "2"]
    capsys.readouterr()
    assert run("azure", "endpoint", "--stage", "prod", "--json") == 0
    assert json.loads(capsys.readouterr().out)["traffic"] == {"green2": 100}


def test_deploy_then_endpoint_the_key_reaches_the_smoke_test_and_stdout_on_request_never_a_log(
    workspace, capsys, caplog
):
    caplog.set_level(logging.DEBUG)
    assert run("azure", "deploy", "--stage", "preprod", "--deployment-name", "green", "--step-seconds", "0") == 0
    out = capsys.readouterr().out
    assert f"releasing {MODEL}:2 to pre-production" in out
    assert f"released: green serves {MODEL}:2" in out
    created = workspace.cloud.created_deployments[0]
    assert created.code_configuration.scoring_script == "score.py"
    staged = Path(created.code_configuration.code)
    assert (staged / "swagger.json").is_file()
    assert (staged / "score.py").is_file()

    assert run("azure", "endpoint", "--stage", "preprod") == 0
    shown = capsys.readouterr().out
    assert workspace.cloud.uri(f"{MODEL}-preprod") in shown
    assert KEY not in shown
    assert run("azure", "endpoint", "--stage", "preprod", "--show-keys") == 0
    with_keys = capsys.readouterr()
    assert KEY in with_keys.out
    assert KEY not in with_keys.err
    assert all(KEY not in record.getMessage() for record in caplog.records)


def test_a_deployment_that_fails_its_smoke_test_exits_3_and_takes_no_traffic(workspace, caplog):
    workspace.cloud.serve_wrong_model.add("bad")
    assert run("azure", "deploy", "--deployment-name", "bad", "--version", "1") == 3
    assert "smoke test failed: list-of-lists: predictions differ" in caplog.text
    assert workspace.cloud.endpoints[f"{MODEL}-preprod"].traffic == {}


def test_deploy_checks_the_config_before_connecting(project: Path, monkeypatch, caplog):
    (project / "deploymentConfig.yml").write_text("computeType: ACI\ncontainerResourceRequirements: {cpu: 1}\n")
    monkeypatch.setattr("amlops.azure.connection.connect", lambda config=None: pytest.fail("connected first"))
    assert run("azure", "deploy") == 2
    assert "field 'containerResourceRequirements.memoryInGB'" in caplog.text


def test_governance_commands_on_the_workspace(workspace, project: Path, capsys):
    models = workspace.client.models.tagged
    models.tags["2"] = {"production": "true", "metric.rmse": "50.1", "metric.r2": "0.5"}
    assert run("models", "list", "--target", "azure", "--json") == 0
    assert {v["version"] for v in json.loads(capsys.readouterr().out)} == {"1", "2"}
    assert run("models", "show", "2", "--target", "azure") == 0
    assert run("endpoints", "list", "--target", "azure") == 0
    asset = translate.data_asset_name(translate.Project.load())
    assert run("azure", "register-data", str(project / CONTRACT.data)) == 0
    assert run("models", "check", "--data", f"azureml:{asset}:1", "--target", "azure") in (0, 4)
    assert workspace.client.blobs.opened  # read back through the storage SDK's calls


def test_render_needs_no_workspace(project: Path, tmp_path: Path, monkeypatch, capsys):
    monkeypatch.setattr("amlops.azure.connection.connect", lambda config=None: pytest.fail("render connected"))
    assert run("azure", "render", "--out", str(tmp_path / "azureml")) == 0
    assert (tmp_path / "azureml" / "manifest.json").is_file()


def test_the_build_steps_on_the_workspace(workspace, project: Path, tmp_path: Path):
    import shutil

    shutil.copy2(REPO / "requirements.lock", project / "requirements.lock")  # a release ships the lock
    artifact = ["--artifact-dir", str(tmp_path / "artifact"), "--target", "azure"]
    for step in ("train", "check-outcome", "download-model", "stage-artifact", "tag-version"):
        assert run("build", step, *artifact) == 0, step
    release = json.loads((tmp_path / "artifact" / "release.json").read_text())
    assert release["model_version"] == "2"
    assert workspace.client.models.tagged.tags["2"]["build_id"] == release["build_id"]


def test_every_azure_command_has_a_run_here():
    import argparse

    from amlops.cli.parser import add_subcommands

    commands = argparse.ArgumentParser().add_subparsers()
    add_subcommands(commands)
    source = Path(__file__).read_text()
    untested = sorted(name for name in commands.choices if not re.search(rf'run\("azure", "{name}"', source))
    assert untested == [], f"add a run of these commands to {Path(__file__).name}: {untested}"
