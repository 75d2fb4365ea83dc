"""The commands that call Azure, run against MLClient operation objects replaced at the boundary.

``FakeCloud`` (``tests/support/fakes.py``) stands where ``MLClient`` would and serves each deployment it
"provisions" with the project's real scoring code: the product's own smoke test decides pass or fail.
"""

from __future__ import annotations

import itertools
import logging
import shutil
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from amlops.azure import online, operations, rollout, translate
from amlops.cli.main import handler
from amlops.cli.parser import register_commands
from amlops.core import tags
from amlops.core.config import ConfigError
from amlops.core.names import STAGES
from amlops.core.settings import ProjectSettings
from amlops.scoring.model import load_model
from amlops.serving.smoke import SmokeTestFailure, known_rows
from tests.support.checkout import REPO, copy_project
from tests.support.fakes import KEY, MODEL, FakeCloud
from tests.support.project import CONTRACT, SNAPSHOT
from tests.support.workspace import FakeComponents, FakeJobs, FakeSchedules, training_job_outputs

pytestmark = [
    pytest.mark.filterwarnings("ignore::marshmallow.warnings.ChangedInMarshmallow4Warning"),
    pytest.mark.filterwarnings("ignore::marshmallow.warnings.RemovedInMarshmallow4Warning"),
]


@pytest.fixture(scope="module")
def models(azure_models: dict[str, Path]) -> dict[str, Path]:
    """Versions 1 and 2 (different alphas: different predictions), and a wrong model a broken image might load."""
    return azure_models


@pytest.fixture
def cloud(models: dict[str, Path]):
    fake = FakeCloud({k: v for k, v in models.items() if k != "wrong"}, models["wrong"])
    yield fake
    fake.close()


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> translate.Project:
    """The test project's document files, parsed: the committed configuration, the test project's contract."""
    return translate.Project.load(ProjectSettings(root=copy_project(tmp_path_factory.mktemp("files") / "project")))


def _entities(files: translate.Project, stage: str, deployment: str, version: str) -> online.OnlineEntities:
    path = REPO / STAGES[stage].config_file
    return online.online_entities(
        files,
        files.deployment_config(path),
        endpoint_name=f"{MODEL}-{stage}",
        deployment_name=deployment,
        model=online.model_reference(MODEL, version),
        code=REPO,
        environment=translate.scoring_environment(files),
    )


def _target(models: dict[str, Path], version: str) -> rollout.SmokeTarget:
    return rollout.SmokeTarget(models[version], MODEL, version, known_rows(SNAPSHOT, contract=CONTRACT))


def _release(cloud, files, models, name: str, version: str, stage: str = "preprod", **options) -> Any:
    entities = _entities(files, stage, name, version)
    sleeps: list[float] = []
    result = rollout.deploy(
        cloud,
        entities.endpoint,
        entities.deployment,
        _target(models, version),
        sleep=sleeps.append,
        say=lambda line: cloud.events.append(("say", line)),
        **options,
    )
    return result, sleeps


def _scores(cloud: FakeCloud, deployment: str) -> list[int]:
    return [i for i, event in enumerate(cloud.events) if event[:1] == ("score",) and event[2] == deployment]


# --- deploy -----------------------------------------------------------------------------------------------------


def test_operation_attributes_exist_on_mlclient():
    from azure.ai.ml import MLClient

    for name in operations.CLIENT_OPERATIONS:
        assert isinstance(getattr(MLClient, name), property), name


def test_first_release_creates_the_endpoint_and_takes_all_traffic(cloud, files, models):
    result, _ = _release(cloud, files, models, "v1-first", "1")
    endpoint = cloud.created_endpoints[0]
    assert type(endpoint).__name__ == "ManagedOnlineEndpoint"
    assert (endpoint.name, endpoint.auth_mode, endpoint.traffic) == (f"{MODEL}-preprod", "key", {})
    deployment = cloud.created_deployments[0]
    assert type(deployment).__name__ == "ManagedOnlineDeployment"
    assert (deployment.name, deployment.instance_type, deployment.model) == (
        "v1-first",
        "Standard_DS3_v2",
        f"azureml:{MODEL}:1",
    )
    assert deployment.environment_variables["AMLOPS_SCORING_MAX_BATCH_ROWS"] == "10000"
    create = cloud.position(("create_deployment", f"{MODEL}-preprod", "v1-first"))
    first_traffic = next(i for i, e in enumerate(cloud.events) if e[0] == "endpoint" and e[2])
    smoke_before = [i for i in _scores(cloud, "v1-first") if create < i < first_traffic]
    assert smoke_before  # tested through the endpoint, with the key, before any traffic
    assert cloud.traffic_log()[-1] == {"v1-first": 100}
    assert result.traffic == {"v1-first": 100}
    assert result.traffic_steps == [100]  # nothing to share traffic with: all at once
    assert result.deleted == []
    assert result.scoring_uri == cloud.uri(f"{MODEL}-preprod")


def test_blue_green_release_in_steps_retires_the_old_deployment_last(cloud, files, models):
    _release(cloud, files, models, "blue", "1")
    cloud.events.clear()
    result, sleeps = _release(cloud, files, models, "green", "2", traffic_steps=[10, 50], step_seconds=30)
    ep = f"{MODEL}-preprod"
    create = cloud.position(("create_deployment", ep, "green"))
    traffic_events = [i for i, e in enumerate(cloud.events) if e[0] == "endpoint"]
    assert cloud.traffic_log() == [
        {"green": 10, "blue": 90},
        {"green": 50, "blue": 50},
        {"green": 100, "blue": 0},
        {"green": 100},  # the tag update, once the old deployment is gone
    ]
    assert any(create < i < traffic_events[0] for i in _scores(cloud, "green"))  # smoke test before traffic
    for before, after in itertools.pairwise(traffic_events):
        assert any(before < i < after for i in _scores(cloud, "green"))  # and after every step
    delete = cloud.position(("delete_deployment", ep, "blue"))
    assert delete > traffic_events[2]
    assert max(_scores(cloud, "green")) < delete  # the endpoint passed as clients call it, then blue went
    assert sleeps == [30, 30]
    assert result.traffic_steps == [10, 50, 100]
    assert result.deleted == ["blue"]
    assert result.previous == ["blue"]
    assert set(cloud.deployments[ep]) == {"green"}
    assert cloud.endpoints[ep].tags[tags.LIVE_TAG] == "green"


def test_mirroring_happens_before_any_traffic_moves(cloud, files, models):
    _release(cloud, files, models, "blue", "1")
    cloud.events.clear()
    _, sleeps = _release(cloud, files, models, "green", "2", mirror_percent=20, mirror_seconds=120)
    endpoint_events = [e for e in cloud.events if e[0] == "endpoint"]
    assert endpoint_events[0][2:] == ({"blue": 100}, {"green": 20})  # mirrored, live traffic untouched
    assert endpoint_events[1][2:] == ({"blue": 100}, {})  # mirror off before the shift
    assert endpoint_events[2][2] == {"green": 100, "blue": 0}
    assert sleeps == [120]


def test_a_deployment_that_answers_wrongly_never_gets_traffic(cloud, files, models):
    _release(cloud, files, models, "blue", "1")
    cloud.events.clear()
    cloud.serve_wrong_model.add("green")
    with pytest.raises(SmokeTestFailure, match="predictions differ"):
        _release(cloud, files, models, "green", "2")
    assert cloud.traffic_log() == []  # traffic never moved
    assert ("delete_deployment", f"{MODEL}-preprod", "green") in cloud.events
    assert set(cloud.deployments[f"{MODEL}-preprod"]) == {"blue"}
    assert cloud.endpoints[f"{MODEL}-preprod"].traffic == {"blue": 100}


def test_a_failure_while_moving_traffic_puts_it_back(cloud, files, models):
    _release(cloud, files, models, "blue", "1")
    cloud.events.clear()
    cloud.break_at = ("green", 10)  # green starts answering wrongly once it has live traffic
    with pytest.raises(SmokeTestFailure):
        _release(cloud, files, models, "green", "2", traffic_steps=[10, 50])
    assert cloud.traffic_log() == [{"green": 10, "blue": 90}, {"blue": 100, "green": 0}]
    deleted = [e[2] for e in cloud.events if e[0] == "delete_deployment"]
    assert deleted == ["green"]  # the old deployment is untouched
    assert cloud.endpoints[f"{MODEL}-preprod"].traffic == {"blue": 100}
    assert cloud.endpoints[f"{MODEL}-preprod"].tags[tags.LIVE_TAG] == "blue"  # no stale record of green


def test_a_deployment_that_fails_to_provision_leaves_traffic_alone(cloud, files, models):
    _release(cloud, files, models, "blue", "1")
    cloud.events.clear()
    cloud.fail_provisioning.add("green")
    with pytest.raises(operations.AzureOperationError, match=r"green .* failed; traffic unchanged.*container crashed"):
        _release(cloud, files, models, "green", "2")
    assert cloud.traffic_log() == []
    assert set(cloud.deployments[f"{MODEL}-preprod"]) == {"blue"}


def test_keep_failed_keeps_the_broken_deployment_for_its_logs(cloud, files, models):
    cloud.serve_wrong_model.add("v1-bad")
    with pytest.raises(SmokeTestFailure):
        _release(cloud, files, models, "v1-bad", "1", keep_failed=True)
    assert "v1-bad" in cloud.deployments[f"{MODEL}-preprod"]
    assert cloud.endpoints[f"{MODEL}-preprod"].traffic == {}


def test_keep_old_allows_rollback(cloud, files, models):
    _release(cloud, files, models, "blue", "1")
    result, _ = _release(cloud, files, models, "green", "2", keep_old=True)
    ep = f"{MODEL}-preprod"
    assert result.deleted == []
    assert cloud.endpoints[ep].tags[tags.PREVIOUS_TAG] == "blue"
    cloud.events.clear()
    serving, deployment = rollout.rollback(cloud, ep, say=lambda line: None)
    assert serving == "blue"
    assert rollout.model_of(deployment) == (MODEL, "1")
    assert cloud.traffic_log() == [{"blue": 100, "green": 0}]
    assert cloud.endpoints[ep].tags[tags.PREVIOUS_TAG] == "green"  # and forward again if needed
    # The product's smoke test now answers with version 1 through the endpoint, as clients call it.
    rollout.smoke_deployment(cloud.uri(ep), KEY, None, _target(models, "1"))


def test_cleanup_deletes_the_kept_deployment_once_the_release_is_final(cloud, files, models):
    _release(cloud, files, models, "blue", "1")
    _release(cloud, files, models, "green", "2", keep_old=True)
    ep = f"{MODEL}-preprod"
    assert set(cloud.deployments[ep]) == {"blue", "green"}
    assert rollout.delete_idle(cloud, ep, say=lambda line: None) == ["blue"]
    assert set(cloud.deployments[ep]) == {"green"}
    assert cloud.endpoints[ep].tags[tags.PREVIOUS_TAG] == ""
    assert rollout.delete_idle(cloud, ep, say=lambda line: None) == []


def test_cleanup_refuses_while_traffic_is_split(cloud, files, models):
    _release(cloud, files, models, "blue", "1")
    _release(cloud, files, models, "green", "2", keep_old=True)
    ep = f"{MODEL}-preprod"
    cloud.endpoints[ep].traffic = {"blue": 50, "green": 50}
    with pytest.raises(operations.AzureOperationError, match="split"):
        rollout.delete_idle(cloud, ep, say=lambda line: None)
    assert set(cloud.deployments[ep]) == {"blue", "green"}


def test_rollback_without_a_previous_deployment_says_so(cloud, files, models):
    _release(cloud, files, models, "blue", "1")
    _release(cloud, files, models, "green", "2")  # blue deleted after the healthy release
    with pytest.raises(operations.AzureOperationError, match="no previous deployment recorded"):
        rollout.rollback(cloud, f"{MODEL}-preprod")
    with pytest.raises(operations.AzureOperationError, match=r"\['blue'\] no longer exists"):
        rollout.rollback(cloud, f"{MODEL}-preprod", to="blue")


def test_a_release_never_reuses_a_deployment_name(cloud, files, models):
    _release(cloud, files, models, "blue", "1")
    cloud.events.clear()
    with pytest.raises(operations.AzureOperationError, match="already exists"):
        _release(cloud, files, models, "blue", "2")
    assert not [e for e in cloud.events if e[0] in ("create_deployment", "endpoint")]


def test_an_endpoint_of_another_kind_is_refused(cloud, files, models):
    _release(cloud, files, models, "blue", "1")
    kubernetes = _entities(files, "prod", "green", "2")
    with pytest.raises(operations.AzureOperationError, match="exists as a ManagedOnlineEndpoint"):
        rollout.deploy(
            cloud,
            type(kubernetes.endpoint)(name=f"{MODEL}-preprod", compute="k8s-compute"),
            kubernetes.deployment,
            _target(models, "2"),
            say=lambda line: None,
        )


def test_production_release_creates_kubernetes_entities(cloud, files, models):
    result, _ = _release(cloud, files, models, "v2-prod", "2", stage="prod")
    endpoint, deployment = cloud.created_endpoints[0], cloud.created_deployments[0]
    assert type(endpoint).__name__ == "KubernetesOnlineEndpoint"
    assert endpoint.compute == "k8s-compute"
    assert type(deployment).__name__ == "KubernetesOnlineDeployment"
    assert (deployment.resources.requests.cpu, deployment.resources.limits.memory) == ("0.5", "2Gi")
    assert type(deployment.scale_settings).__name__ == "TargetUtilizationScaleSettings"
    assert deployment.liveness_probe.initial_delay == 60
    assert result.traffic == {"v2-prod": 100}


def test_a_healthy_release_is_not_rolled_back_while_routing_converges(cloud, files, models):
    """For a while after the switch to 100%, a request may still reach the old deployment: test again, not undo."""
    _release(cloud, files, models, "blue", "1")
    cloud.routing_lag = 3  # the next three requests without a deployment header still go to blue
    result, sleeps = _release(cloud, files, models, "green", "2")
    assert result.traffic == {"green": 100}
    assert sleeps.count(rollout.CONVERGE_SECONDS) >= 1  # it waited for routing instead of restoring traffic
    assert ("delete_deployment", f"{MODEL}-preprod", "blue") in cloud.events


def test_a_release_whose_endpoint_never_serves_the_new_version_is_undone(cloud, files, models):
    _release(cloud, files, models, "blue", "1")
    cloud.routing_lag = 10_000  # routing never converges
    with pytest.raises(SmokeTestFailure, match="expected"):
        _release(cloud, files, models, "green", "2")
    assert cloud.endpoints[f"{MODEL}-preprod"].traffic.get("blue") == 100


def test_split_traffic_sums_to_100():
    assert rollout.split_traffic({"a": 70, "b": 30}, "new", 10) == {"new": 10, "a": 63, "b": 27}
    assert rollout.split_traffic({"a": 1, "b": 1, "c": 1}, "new", 50) == {"new": 50, "a": 17, "b": 17, "c": 16}
    assert rollout.split_traffic({}, "new", 10) == {"new": 100}


def test_mirror_share_is_checked(cloud, files, models):
    with pytest.raises(ConfigError, match="0-50%"):
        _release(cloud, files, models, "blue", "1", mirror_percent=80)


def test_the_fake_refuses_mirrored_traffic_on_kubernetes_as_the_service_does(cloud, files, models):
    _release(cloud, files, models, "v1-prod", "1", stage="prod")
    endpoint = cloud.online_endpoints.get(f"{MODEL}-prod")
    endpoint.mirror_traffic = {"v1-prod": 10}
    with pytest.raises(Exception, match="not supported for Kubernetes"):
        cloud.online_endpoints.begin_create_or_update(endpoint).result()


def test_mirroring_on_kubernetes_is_refused_before_anything_is_created(cloud, files, models):
    _release(cloud, files, models, "v1-prod", "1", stage="prod")
    with pytest.raises(ConfigError, match="Kubernetes online endpoints do not take mirrored traffic"):
        _release(cloud, files, models, "v2-prod", "2", stage="prod", mirror_percent=10)
    assert [d.name for d in cloud.created_deployments] == ["v1-prod"]  # no slow deployment left behind
    assert cloud.endpoints[f"{MODEL}-prod"].traffic == {"v1-prod": 100}


# --- jobs, publish, register ------------------------------------------------------------------------------------


def test_submit_validates_then_follows_the_job_to_completed(files, tmp_path: Path):
    from amlops.azure import render

    job = render.training_assets(files, tmp_path).pipeline
    jobs = FakeJobs(["Queued", "Queued", "Running", "Completed"])
    lines: list[str] = []
    finished = operations.submit(SimpleNamespace(jobs=jobs), job, say=lines.append, sleep=lambda s: None)
    assert finished.status == "Completed"
    assert [c[0] for c in jobs.calls[:2]] == ["validate", "create_or_update"]
    assert jobs.calls[1][1] is job
    assert jobs.calls[1][2] == files.settings.experiment_name
    assert [line for line in lines if line.startswith("job ")] == [
        "job job-42: Queued",
        "job job-42: Running",
        "job job-42: Completed",
    ]
    assert "https://ml.azure.com/runs/job-42" in "\n".join(lines)


@pytest.mark.parametrize("status", ["Failed", "Canceled", "NotResponding"])
def test_submit_fails_on_anything_but_completed(files, tmp_path: Path, status: str):
    from amlops.azure import render

    job = render.training_assets(files, tmp_path).train_job
    with pytest.raises(operations.AzureOperationError, match=f"ended {status}: https://ml.azure.com/runs/job-42"):
        operations.submit(
            SimpleNamespace(jobs=FakeJobs(["Running", status])), job, say=lambda line: None, sleep=lambda s: None
        )


def test_submit_refuses_a_job_the_sdk_does_not_validate(files, tmp_path: Path):
    from amlops.azure import render

    job = render.training_assets(files, tmp_path).pipeline
    job.settings.default_compute = None
    jobs = FakeJobs(["Completed"])
    with pytest.raises(ConfigError, match=r"does not validate: .*jobs\.prep\.compute: Compute not set"):
        operations.submit(SimpleNamespace(jobs=jobs), job, say=lambda line: None)
    assert [c[0] for c in jobs.calls] == ["validate"]


def test_submit_timeout(files, tmp_path: Path):
    from amlops.azure import render

    job = render.training_assets(files, tmp_path).train_job
    with pytest.raises(operations.AzureOperationError, match="still Running"):
        operations.submit(
            SimpleNamespace(jobs=FakeJobs(["Running"])), job, timeout=0, say=lambda line: None, sleep=lambda s: None
        )


@pytest.mark.parametrize("comes_back_enabled", [False, True])
def test_publish_registers_the_pipeline_component_and_a_disabled_schedule(files, tmp_path, comes_back_enabled):
    from amlops.azure import render

    assets = render.training_assets(files, tmp_path)
    component = translate.pipeline_component(assets.pipeline)
    job = translate.scheduled_pipeline_job(files, f"azureml:{component.name}:2026.1", assets.data)
    schedule = translate.training_schedule(files, job, "0 6 * * 1")
    client = SimpleNamespace(components=FakeComponents(), schedules=FakeSchedules(comes_back_enabled))
    published = operations.publish(client, component, version="2026.1", schedule=schedule, say=lambda line: None)
    registered, version = client.components.calls[0]
    assert type(registered).__name__ == "PipelineComponent"
    assert registered.name == files.pipeline_name
    assert version == "2026.1"
    assert set(registered.inputs) == {"data", "alpha"}
    created = client.schedules.calls[0][1]
    assert created.is_enabled is False
    assert created.trigger.expression == "0 6 * * 1"
    assert created.create_job.component == f"azureml:{files.pipeline_name}:2026.1"
    assert (("disable", created.name) in client.schedules.calls) is comes_back_enabled
    assert published.schedule == created.name


def test_publish_takes_a_description_and_hyperparameter_defaults(project: Path):
    from amlops.azure import build_steps

    files = translate.Project.load()
    client = SimpleNamespace(components=FakeComponents(), schedules=FakeSchedules(False))
    build_steps.publish(
        client=client,
        project=files,
        version="7",
        name=files.pipeline_name,
        description="weekly retrain on the new snapshot",
        hyperparameters={"alpha": 0.25},
        say=lambda line: None,
    )
    registered, version = client.components.calls[0]
    assert (registered.name, version) == (files.pipeline_name, "7")
    assert registered.description == "weekly retrain on the new snapshot"
    assert float(registered.inputs["alpha"].default) == 0.25


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"name": "my-pipeline"}, "published pipeline component is named"),
        ({"hyperparameters": {"gamma": 1.0}}, r"no input\(s\) \['gamma'\]"),
    ],
)
def test_publish_refuses_what_azure_cannot_honour(project: Path, options, message):
    from amlops.azure import build_steps

    files = translate.Project.load()
    client = SimpleNamespace(components=FakeComponents(), schedules=FakeSchedules(False))
    with pytest.raises(ConfigError, match=message):
        build_steps.publish(client=client, project=files, say=lambda line: None, **options)
    assert client.components.calls == []


@pytest.fixture
def job_outputs(project: Path, tmp_path: Path) -> dict[str, Path]:
    """A training pipeline job's outputs, as its steps write them."""
    return training_job_outputs(project, tmp_path / "job")


class FakeModels:
    def __init__(self):
        self.created: list[Any] = []

    def create_or_update(self, model: Any) -> Any:
        self.created.append(model)
        return SimpleNamespace(name=model.name, version="5", id=f"azureml:{model.name}:5")


def test_a_published_pipeline_reruns_with_changed_inputs(files, job_outputs, tmp_path: Path):
    """``pipeline run --published ... --param alpha=0.5 --target azure``: validated by the SDK, then submitted."""
    from amlops.azure import build_steps

    jobs = FakeJobs(["Completed"], job_outputs)
    outcome = build_steps.run_published(
        client=SimpleNamespace(jobs=jobs), project=files, inputs={"alpha": 0.5}, poll_seconds=0, say=lambda line: None
    )
    assert [call[0] for call in jobs.calls][:2] == ["validate", "create_or_update"]
    submitted = jobs.calls[1][1]
    assert submitted.inputs["alpha"]._data == 0.5
    assert submitted.inputs["data"]._data.type == "uri_file"
    assert submitted.component == f"azureml:{files.pipeline_name}@latest"
    assert outcome["pipeline_run_id"] == "job-42"


def test_events_emitted_inside_a_job_are_relayed_once_by_the_machine_that_follows_it(
    files, job_outputs, project, tmp_path: Path
):
    """The register step's ``model.registered`` reaches this machine's event log and command, once."""
    from amlops.azure import build_steps, render
    from amlops.core.files import read_json, write_json
    from amlops.registry import events
    from amlops.steps import register

    record = read_json(job_outputs["registration"] / register.REGISTRATION_FILE)
    emitted = {"id": "e-1", "type": "model.registered", "model": MODEL, "version": "4", "time": "t", "details": {}}
    write_json(job_outputs["registration"] / register.REGISTRATION_FILE, record | {"events": [emitted]})
    for _ in range(2):
        outcome = build_steps.outcome_of(
            SimpleNamespace(jobs=FakeJobs(["Completed"], job_outputs)),
            render.training_assets(files, tmp_path / "assets").pipeline,
            poll_seconds=0,
            say=lambda line: None,
        )
        assert "events" not in outcome
    assert [event["id"] for event in events.read_events()] == ["e-1"]


def test_register_model_from_a_job_output_with_local_lineage_tags(job_outputs, tmp_path: Path):
    from amlops.core.files import read_json
    from amlops.steps import evaluate, register

    jobs = FakeJobs(["Completed"], job_outputs, {"azureml.git.commit": "abc123", "azureml.git.dirty": "False"})
    client = SimpleNamespace(jobs=jobs, models=FakeModels())
    operations.register_from_job(
        client, "job-42", model_name=MODEL, root=REPO, scratch=tmp_path / "scratch", say=lambda line: None
    )
    model = client.models.created[0]
    assert model.name == MODEL
    assert model.type == "mlflow_model"
    assert model.path == "azureml://jobs/job-42/outputs/trained/paths/model"
    expected = register.lineage_tags(
        read_json(job_outputs["trained"] / "train.json"),
        evaluate.load_decision(job_outputs["evaluation"]),
        read_json(job_outputs["prepared"] / "fingerprint.json"),
        "job-42",
        REPO,
    ) | {"git_commit": "abc123", "git_dirty": "false"}
    assert model.tags == expected
    assert model.tags["pipeline_run_id"] == "job-42"
    assert model.tags["decision"] == "register"


def test_register_model_refuses_what_the_gate_refused(job_outputs, tmp_path: Path):
    from dataclasses import asdict

    from amlops.core.files import write_json
    from amlops.steps import evaluate

    keep = evaluate.decide({"rmse": 90.0, "mae": 80.0, "r2": 0.1}, None, CONTRACT)
    write_json(job_outputs["evaluation"] / evaluate.DECISION_FILE, asdict(keep) | {"register": keep.register})
    client = SimpleNamespace(jobs=FakeJobs(["Completed"], job_outputs), models=FakeModels())
    with pytest.raises(operations.AzureOperationError, match="decided 'reject'"):
        operations.register_from_job(client, "job-42", model_name=MODEL, root=REPO, scratch=tmp_path / "a")
    assert client.models.created == []
    operations.register_from_job(
        client, "job-42", model_name=MODEL, root=REPO, scratch=tmp_path / "b", force=True, say=lambda line: None
    )
    assert client.models.created[0].tags["decision"] == "reject"


def test_register_model_refuses_a_job_that_already_registered(job_outputs, tmp_path: Path):
    from amlops.core.files import write_json

    write_json(job_outputs["registration"] / "registration.json", {"registered_version": "3", "model_name": MODEL})
    client = SimpleNamespace(jobs=FakeJobs(["Completed"], job_outputs), models=FakeModels())
    with pytest.raises(operations.AzureOperationError, match=f"already registered {MODEL} version 3"):
        operations.register_from_job(client, "job-42", model_name=MODEL, root=REPO, scratch=tmp_path)


def test_register_model_needs_a_completed_pipeline_job(job_outputs, tmp_path: Path):
    client = SimpleNamespace(jobs=FakeJobs(["Failed"], job_outputs), models=FakeModels())
    with pytest.raises(operations.AzureOperationError, match="is Failed"):
        operations.register_from_job(client, "job-42", model_name=MODEL, root=REPO, scratch=tmp_path)
    client = SimpleNamespace(jobs=FakeJobs(["Completed"], {"trained": job_outputs["trained"]}), models=FakeModels())
    with pytest.raises(operations.AzureOperationError, match="not a training pipeline job"):
        operations.register_from_job(client, "job-42", model_name=MODEL, root=REPO, scratch=tmp_path)


# --- the CLI glue -----------------------------------------------------------------------------------------------


class FakeRegistry:
    """``models`` as the deploy command uses it: the latest version, and downloads in Azure's layout."""

    def __init__(self, models: dict[str, Path]):
        self.models = models

    def get(self, name: str, version: str | None = None, label: str | None = None) -> Any:
        return SimpleNamespace(name=name, version=version or max(self.models))

    def download(self, name: str, version: str, download_path: str) -> None:
        shutil.copytree(self.models[version], Path(download_path) / name / "model", dirs_exist_ok=True)


def test_register_commands_adds_the_azure_group():
    import argparse

    root = argparse.ArgumentParser()
    register_commands(root.add_subparsers(dest="command", required=True))
    args = root.parse_args(["azure", "deploy", "--stage", "prod", "--traffic-steps", "10,50", "--keep-old"])
    assert (args.stage, args.traffic_steps, args.keep_old) == ("prod", [10, 50], True)
    assert callable(handler(args.handler))
    with pytest.raises(SystemExit):
        root.parse_args(["azure", "deploy", "--traffic-steps", "0,120"])


def test_default_deployment_names_are_valid_and_new():
    from datetime import datetime, timezone

    from amlops.azure import build_steps

    name = build_steps.default_deployment_name("12", datetime(2026, 11, 27, 6, 15, 0, tzinfo=timezone.utc))
    assert name == "v12-1127061500"
    assert len(build_steps.default_deployment_name("1" * 40)) <= 32


# --- the CI build's Azure steps ---------------------------------------------------------------------------------


def test_build_train_step_returns_the_outcome_the_local_build_writes(project: Path, job_outputs):
    from amlops.azure import build_steps
    from amlops.core.files import write_json
    from amlops.steps import evaluate

    registration = {
        "outcome": "register",
        "reasons": ["no model in production yet"],
        "registered_version": "4",
        "production_version": None,
        "model_name": MODEL,
    }
    write_json(job_outputs["registration"] / "registration.json", registration)
    jobs = FakeJobs(["Running", "Completed"], job_outputs)
    outcome = build_steps.train(
        client=SimpleNamespace(jobs=jobs), inputs={"alpha": 3.0}, say=lambda line: None, sleep=lambda s: None
    )
    decision = evaluate.load_decision(job_outputs["evaluation"])
    assert outcome == {
        "pipeline_run_id": "job-42",
        **registration,
        "candidate": decision.candidate,
        "production": decision.production,
    }
    submitted = jobs.calls[1][1]
    assert submitted.inputs["alpha"]._data == 3.0
    assert type(submitted).__name__ == "PipelineJob"
    assert "--no-promote" in submitted.jobs["register"].component.command
    assert ("download", "job-42", "registration") in jobs.calls


def test_build_download_and_tag_steps(project: Path, models, tmp_path: Path):
    from azure.ai.ml.entities import Model

    from amlops.azure import build_steps

    class Registry(FakeRegistry):
        def __init__(self, models):
            super().__init__(models)
            self.updated: list[Any] = []

        def get(self, name: str, version: str | None = None, label: str | None = None) -> Any:
            return Model(name=name, version=version, path="azureml://x", tags={"decision": "register"})

        def create_or_update(self, model: Any) -> Any:
            self.updated.append(model)
            return model

    registry = Registry({k: v for k, v in models.items() if k != "wrong"})
    client = SimpleNamespace(models=registry)
    dest = build_steps.download_model("2", tmp_path / "artifact" / "model", client=client)
    assert (dest / "MLmodel").is_file()
    assert load_model(dest).estimator.predict(known_rows(SNAPSHOT, contract=CONTRACT).to_numpy()).shape == (5,)
    build_steps.tag_model("2", {"build_id": 118, "build_url": "https://dev.azure.com/x"}, client=client)
    tagged = registry.updated[0]
    assert (tagged.name, tagged.version) == (MODEL, "2")
    assert tagged.tags == {"decision": "register", "build_id": "118", "build_url": "https://dev.azure.com/x"}


def test_the_training_code_snapshot_records_the_commit_it_was_copied_from(tmp_path: Path):
    from amlops.azure import render
    from amlops.core import lineage

    code = render.stage_training_code(translate.Project.load(ProjectSettings(root=REPO)), tmp_path / "code")
    assert (code / lineage.SOURCE_FILE).is_file()
    assert lineage.git_commit(code) == lineage.git_commit(REPO)


@pytest.mark.parametrize(
    ("uri", "warned"),
    [
        ("http://10.0.4.7/api/v1/endpoint/churn-prod/score", True),  # a Kubernetes endpoint without TLS
        ("https://churn-preprod.westeurope.inference.ml.azure.com/score", False),
        ("http://127.0.0.1:31311/score", False),  # this machine: nothing crosses a network
    ],
)
def test_a_key_about_to_travel_over_plain_http_is_warned_about(uri: str, warned: bool, caplog):
    caplog.set_level(logging.WARNING)
    assert rollout.warn_if_plain_http(uri) is warned
    assert ("travels unencrypted" in caplog.text) is warned
