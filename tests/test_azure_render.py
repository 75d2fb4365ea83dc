"""Rendered v2 YAML: every file loads with azure.ai.ml, survives dump-and-reload, and the jobs validate offline."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
import yaml

from amlops.azure import render, translate
from amlops.azure.connection import OfflineCredential
from amlops.core.config import ConfigError
from amlops.core.settings import ProjectSettings
from tests.support.checkout import REPO

pytestmark = [
    pytest.mark.filterwarnings("ignore::marshmallow.warnings.ChangedInMarshmallow4Warning"),
    pytest.mark.filterwarnings("ignore::marshmallow.warnings.RemovedInMarshmallow4Warning"),
]

#: What each kind of file must load as.
EXPECTED_TYPES = {
    "environment": "Environment",
    "command_component": "CommandComponent",
    "pipeline_component": "PipelineComponent",
    "command_job": "Command",
    "pipeline_job": "PipelineJob",
    "schedule": "JobSchedule",
    "managed_online_endpoint": "ManagedOnlineEndpoint",
    "managed_online_deployment": "ManagedOnlineDeployment",
    "kubernetes_online_endpoint": "KubernetesOnlineEndpoint",
    "kubernetes_online_deployment": "KubernetesOnlineDeployment",
}


def _loader(name: str):
    import azure.ai.ml as ml

    if name == "load_schedule":  # not exported by azure.ai.ml
        from azure.ai.ml.entities._load_functions import load_schedule

        return load_schedule
    return getattr(ml, name)


@pytest.fixture(scope="module")
def project() -> translate.Project:
    return translate.Project.load(ProjectSettings(root=REPO))


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory, project: translate.Project) -> tuple[Path, list]:
    out = tmp_path_factory.mktemp("render") / "azureml"
    return out, render.render(project, out, model_version="7")


class RefusingCredential:
    """Fails the test if anything asks for a token: validation must stay offline."""

    def get_token(self, *scopes, **kwargs):
        raise AssertionError(f"a token was requested for {scopes}: validation went online")


@pytest.fixture(scope="module")
def offline_client():
    from azure.ai.ml import MLClient

    return MLClient(RefusingCredential(), "00000000-0000-0000-0000-000000000000", "rg", "ws", enable_telemetry=False)


def test_render_writes_the_complete_set(rendered: tuple[Path, list], project: translate.Project):
    out, files = rendered
    kinds = sorted(item.kind for item in files)
    assert kinds == sorted(
        ["environment"] * 2
        + ["command_component"] * 4
        + ["pipeline_component", "command_job", "pipeline_job", "pipeline_job", "schedule"]
        + ["managed_online_endpoint", "managed_online_deployment"]
        + ["kubernetes_online_endpoint", "kubernetes_online_deployment"]
    )
    manifest = json.loads((out / render.MANIFEST).read_text())
    assert [item["file"] for item in manifest] == [item.file for item in files]
    assert (out / "code" / "train" / "train.py").is_file()
    assert (out / "code" / "train" / "amlops" / "steps" / "prep.py").is_file()
    assert (out / "code" / "score" / "score.py").is_file()
    assert not list((out / "code").rglob("__pycache__"))
    snapshot = project.settings.data_snapshot
    assert (out / "data" / snapshot.name).read_bytes() == snapshot.read_bytes()


def test_every_file_starts_with_its_schema(rendered: tuple[Path, list]):
    out, files = rendered
    for item in files:
        content = yaml.safe_load((out / item.file).read_text())
        assert next(iter(content)) == "$schema", item.file
        assert content["$schema"] == render.SCHEMA_URL.format(render.KINDS[item.kind][0])
        assert content["$schema"].startswith("https://azuremlschemas.azureedge.net/latest/")


def test_every_file_loads_with_the_matching_loader(rendered: tuple[Path, list]):
    out, files = rendered
    for item in files:
        entity = _loader(item.loader)(out / item.file)
        assert type(entity).__name__ == EXPECTED_TYPES[item.kind], item.file


def test_every_file_survives_dump_and_reload(rendered: tuple[Path, list]):
    out, files = rendered
    for item in files:
        path = out / item.file
        first = _loader(item.loader)(path)
        again = path.with_name(f"roundtrip.{path.name}")
        adjust = None
        if item.kind == "schedule":  # the SDK dumps a schedule's job inline, which its loader refuses
            adjust = render.schedule_job_by_file(yaml.safe_load(path.read_text())["create_job"])
        again.write_text(render.yaml_text(first, item.kind, again.parent, adjust=adjust))
        try:
            second = _loader(item.loader)(again)
            expected = render.relativize(render.entity_dict(first), path.parent)
            assert render.relativize(render.entity_dict(second), path.parent) == expected, item.file
        finally:
            again.unlink()


def test_local_paths_stay_local_and_relative(rendered: tuple[Path, list], project: translate.Project):
    out, _ = rendered
    pipeline = yaml.safe_load((out / "jobs" / "pipeline.yml").read_text())
    assert pipeline["inputs"]["data"] == {"path": f"../data/{project.settings.data_snapshot.name}", "type": "uri_file"}
    for node in pipeline["jobs"].values():
        assert node["component"]["code"] == "../code/train"
    deployment = yaml.safe_load((out / "endpoints" / "preprod" / "deployment.yml").read_text())
    assert deployment["code_configuration"] == {"code": "../../code/score", "scoring_script": "score.py"}
    for item in json.loads((out / render.MANIFEST).read_text()):
        assert "azureml:/" not in (out / item["file"]).read_text(), item["file"]


def test_the_sdk_dump_mangles_local_input_paths(project: translate.Project, tmp_path: Path):
    """Why render rewrites paths: azure-ai-ml 1.35 dumps a local input as a registered-asset reference."""
    assets = render.training_assets(project, tmp_path)
    buffer = io.StringIO()
    assets.pipeline.dump(buffer)
    assert yaml.safe_load(buffer.getvalue())["inputs"]["data"]["path"] == f"azureml:{assets.data}"


def test_the_sdk_cannot_reload_its_own_dump_of_a_loaded_command_job(rendered: tuple[Path, list], tmp_path: Path):
    """Why render converts nodes to jobs: load_job gives a command job as a node, whose dump load_job refuses."""
    out, _ = rendered
    loaded = _loader("load_job")(out / "jobs" / "train.yml")
    assert type(loaded).__name__ == "Command"
    loaded.dump(tmp_path / "raw.yml")
    with pytest.raises(Exception, match="component"):
        _loader("load_job")(tmp_path / "raw.yml")


def test_rendered_jobs_validate_offline(rendered: tuple[Path, list], offline_client):
    out, files = rendered
    jobs = [item for item in files if item.kind.endswith("_job")]
    assert len(jobs) == 3
    for item in jobs:
        result = offline_client.jobs.validate(_loader("load_job")(out / item.file))
        assert result.passed, (item.file, result.error_messages)
    assert len(render.verify(out, offline_client)) == len(files)


def test_the_pipeline_is_built_with_dsl_and_validates(project: translate.Project, tmp_path: Path, offline_client):
    assets = render.training_assets(project, tmp_path)
    pipeline = assets.pipeline
    assert list(pipeline.jobs) == list(translate.STEPS)
    params = translate.hyperparameters(project.runconfig, contract=project.settings.contract)
    assert set(pipeline.inputs) == {"data", *(param.name for param in params)}  # contract.yml's params
    assert set(pipeline.outputs) == {"prepared", "trained", "evaluation", "registration"}
    assert pipeline.settings.default_compute == project.runconfig.target
    assert pipeline.experiment_name == project.settings.experiment_name
    train = pipeline.jobs["train"]
    assert train.limits.timeout == project.runconfig.maxRunDurationSeconds
    assert all(f"{param.flag} ${{{{inputs.{param.name}}}}}" in train.component.command for param in params)
    assert pipeline.jobs["evaluate"].component.is_deterministic is False  # never reuse an old verdict
    assert pipeline.jobs["register"].component.is_deterministic is False
    assert "--no-promote" in pipeline.jobs["register"].component.command
    assert offline_client.jobs.validate(pipeline).passed
    assert offline_client.jobs.validate(assets.train_job).passed


def test_a_binding_that_points_nowhere_fails_when_the_pipeline_is_built(project: translate.Project, tmp_path: Path):
    from azure.ai.ml import Input, dsl

    components = render.training_assets(project, tmp_path).components

    def broken(data):
        prep = components["prep"](data=data)
        components["train"](prepared=prep.outputs.no_such_output)

    broken.__annotations__ = {"data": Input(type="uri_file")}  # this module postpones annotations
    with pytest.raises(Exception, match="no_such_output"):
        dsl.pipeline(name="broken")(broken)(
            data=Input(type="uri_file", path=str(ProjectSettings(root=REPO).data_snapshot))
        )


def test_the_command_job_is_sklearn_runconfig(project: translate.Project, tmp_path: Path):
    job = render.training_assets(project, tmp_path).train_job
    runconfig = project.runconfig
    assert job.compute == runconfig.target
    assert job.limits.timeout == runconfig.maxRunDurationSeconds
    assert job.resources.instance_count == runconfig.nodeCount
    assert job.environment.image == runconfig.environment.docker.baseImage
    params = translate.hyperparameters(runconfig, contract=project.settings.contract)
    flags = " ".join(f"{param.flag} ${{{{inputs.{param.name}}}}}" for param in params)
    assert job.command.endswith(
        f"{runconfig.script} --data ${{{{outputs.prepared}}}} --out ${{{{outputs.trained}}}} {flags}"
    )
    assert {name: job.inputs[name] for name in project.settings.contract.params} == project.settings.contract.defaults()


def test_environments_are_named_with_a_content_version(rendered: tuple[Path, list], project: translate.Project):
    out, _ = rendered
    train = _loader("load_environment")(out / "environments" / "train.yml")
    assert train.name == f"{project.settings.model_name}-train"  # sklearn.runconfig names none
    assert train.image == project.runconfig.environment.docker.baseImage
    assert (
        train.conda_file["dependencies"][-1]["pip"]
        == yaml.safe_load((REPO / "myenv.yml").read_text())["dependencies"][-1]["pip"]
    )
    score = _loader("load_environment")(out / "environments" / "score.yml")
    assert score.name == f"{project.settings.model_name}-score"
    assert len(train.version) == len(score.version) == 16


def _component_versions(folder: Path) -> dict[str, str]:
    return {path.stem: yaml.safe_load(path.read_text())["version"] for path in sorted(folder.glob("components/*.yml"))}


def test_components_are_versioned_by_their_content(rendered: tuple[Path, list], tmp_path: Path):
    """Re-creating a changed component makes a new version (Azure ML refuses other content under an old one)."""
    from tests.support.checkout import copy_project

    out, _ = rendered
    versions = _component_versions(out)
    assert set(versions) == {"prep", "train", "evaluate", "register", "training_pipeline"}
    assert all(len(version) == 16 for version in versions.values())
    assert len(set(versions.values())) == len(versions)
    root = copy_project(tmp_path / "project")
    same = translate.Project.load(ProjectSettings(root=root))
    render.render(same, tmp_path / "a", model_version="7")
    (root / same.runconfig.script).write_text((root / same.runconfig.script).read_text() + "\n# changed\n")
    render.render(translate.Project.load(ProjectSettings(root=root)), tmp_path / "b", model_version="7")
    before, after = _component_versions(tmp_path / "a"), _component_versions(tmp_path / "b")
    assert all(before[name] != after[name] for name in versions)  # the code snapshot is every step's
    render.render(translate.Project.load(ProjectSettings(root=root)), tmp_path / "c", model_version="7")
    assert _component_versions(tmp_path / "c") == after


def test_deployments_serve_the_requested_model_version(rendered: tuple[Path, list], project: translate.Project):
    out, _ = rendered
    for stage in ("preprod", "prod"):
        deployment = _loader("load_online_deployment")(out / "endpoints" / stage / "deployment.yml")
        assert deployment.model == f"{project.settings.model_name}:7"  # azureml: prefix stripped on load
        assert deployment.endpoint_name == f"{project.settings.model_name}-{stage}"


def test_schedule_names_its_job_file(rendered: tuple[Path, list], project: translate.Project):
    out, _ = rendered
    schedule = _loader("load_schedule")(out / "schedules" / "training_pipeline.yml")
    assert schedule.trigger.expression == render.DEFAULT_CRON
    assert schedule.create_job.component == f"{project.pipeline_name}@latest"


def test_render_refuses_to_overwrite_a_folder_it_did_not_write(tmp_path: Path, project: translate.Project):
    (tmp_path / "precious.txt").write_text("keep me")
    with pytest.raises(ConfigError, match="not written by render"):
        render.render(project, tmp_path)
    assert (tmp_path / "precious.txt").read_text() == "keep me"


def test_rerender_replaces_the_previous_output(rendered: tuple[Path, list], project: translate.Project):
    out, _ = rendered
    stray = out / "components" / "stale.yml"
    stray.write_text("old")
    render.render(project, out, model_version="7")
    assert not stray.exists()


def test_offline_credential_refuses(monkeypatch: pytest.MonkeyPatch):
    from azure.core.exceptions import ClientAuthenticationError

    with pytest.raises(ClientAuthenticationError):
        OfflineCredential().get_token("https://management.azure.com/.default")


def test_jobs_get_the_settings_that_decide_and_nothing_local(
    project: translate.Project, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """A job on Azure validates, gates and checks drift as the machine that submitted it would."""
    monkeypatch.setenv("AMLOPS_DATA_MIN_ROWS", "200")
    monkeypatch.setenv("AMLOPS_DRIFT_MAX_PSI", "0.3")
    monkeypatch.setenv("AMLOPS_EVENTS_COMMAND", "notify-team")  # runs where the job is followed: relayed there
    monkeypatch.setenv("AMLOPS_TRACKING_URI", f"sqlite:///{tmp_path / 'local.db'}")  # local: stays here
    monkeypatch.setenv("AMLOPS_ROOT", str(project.root))
    out = tmp_path / "azureml"
    render.render(project, out, model_version="7")
    expected = {
        "AMLOPS_MODEL_NAME": project.settings.model_name,
        "AMLOPS_DATA_MIN_ROWS": "200",
        "AMLOPS_DRIFT_MAX_PSI": "0.3",
    }
    pipeline = _loader("load_job")(out / "jobs" / "pipeline.yml")
    for step in translate.STEPS:
        assert pipeline.jobs[step].environment_variables == expected, step
    assert _loader("load_job")(out / "jobs" / "train.yml").environment_variables == expected


def test_the_production_instance_type_is_rendered_beside_its_deployment(rendered: tuple[Path, list]):
    out, files = rendered
    manifest = yaml.safe_load((out / "endpoints" / "prod" / render.INSTANCE_TYPE_FILE).read_text())
    deployment = _loader("load_online_deployment")(out / "endpoints" / "prod" / "deployment.yml")
    assert manifest["kind"] == "InstanceType"
    assert deployment.instance_type == manifest["metadata"]["name"]
    assert render.INSTANCE_TYPE_FILE not in {Path(item.file).name for item in files}  # not an Azure ML entity
    assert "kubectl apply -f instance-type.yml" in (out / "endpoints" / "prod" / render.INSTANCE_TYPE_FILE).read_text()
