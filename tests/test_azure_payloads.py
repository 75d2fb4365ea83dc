"""What each entity puts on the wire: the SDK's own REST form (``_to_rest_object`` and its serialisation).

The YAML files are checked by the SDK's schemas (``test_azure_render.py``); these tests read the request bodies the
SDK would send for the same entities, so a setting that a schema accepts but the REST form drops fails here. Code,
environment and model references are resolved to ids by the operations when they send, so they are not read here.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import isodate
import pytest
import yaml

from amlops.azure import online, render, translate
from amlops.core.names import STAGES
from amlops.core.settings import ProjectSettings
from tests.support.checkout import REPO, copy_project

pytestmark = [
    pytest.mark.filterwarnings("ignore::marshmallow.warnings.ChangedInMarshmallow4Warning"),
    pytest.mark.filterwarnings("ignore::marshmallow.warnings.RemovedInMarshmallow4Warning"),
]

LOCATION = "westeurope"
#: A hyperparameter's type in contract.yml, and the type of its component input.
INPUT_TYPES = {"float": "number", "int": "integer", "str": "string", "bool": "boolean"}


def wire(entity: Any) -> dict:
    """The JSON body the SDK sends for ``entity``."""
    to_rest = getattr(entity, "_to_rest_online_endpoint", None) or entity._to_rest_object
    rest = to_rest(location=LOCATION) if "Online" in type(entity).__name__ else to_rest()
    body = rest.serialize() if hasattr(rest, "serialize") else rest.as_dict()
    return json.loads(json.dumps(body, default=str))


def _hyperparameters(project: translate.Project) -> dict[str, tuple[str, str]]:
    """The root's contract.yml params (the example's, or yours): input type and value, the runconfig's overriding."""
    given = dict(zip(project.runconfig.arguments[::2], project.runconfig.arguments[1::2], strict=True))
    return {
        name: (INPUT_TYPES[param.type], str(given.get(f"--{name}", param.default)))
        for name, param in project.settings.contract.params.items()
    }


@pytest.fixture(scope="module")
def project() -> translate.Project:
    return translate.Project.load(ProjectSettings(root=REPO))


@pytest.fixture(scope="module")
def assets(project: translate.Project, tmp_path_factory: pytest.TempPathFactory) -> render.TrainingAssets:
    return render.training_assets(project, tmp_path_factory.mktemp("assets"))


def _online(project: translate.Project, stage: str) -> online.OnlineEntities:
    return online.online_entities(
        project,
        project.deployment_config(REPO / STAGES[stage].config_file),
        endpoint_name=f"ep-{stage}",
        deployment_name="blue",
        model=online.model_reference("diabetes-ridge", "7"),
        code=REPO,
        environment=translate.scoring_environment(project),
    )


def test_the_managed_deployment_sends_its_size_limits_and_probes(project: translate.Project):
    entities = _online(project, "preprod")
    endpoint, deployment = wire(entities.endpoint)["properties"], wire(entities.deployment)
    assert (endpoint["authMode"], endpoint["traffic"]) == ("Key", {})
    sent = deployment["properties"]
    assert (sent["endpointComputeType"], sent["instanceType"], sent["model"]) == (
        "Managed",
        "Standard_DS3_v2",
        "azureml:diabetes-ridge:7",
    )
    assert deployment["sku"]["capacity"] == 1
    assert sent["environmentVariables"]["AMLOPS_SCORING_MAX_BATCH_ROWS"] == "10000"
    assert sent["requestSettings"] == {"maxConcurrentRequestsPerInstance": 1, "requestTimeout": "PT1M"}
    assert sent["livenessProbe"] == sent["readinessProbe"]
    assert sent["livenessProbe"]["failureThreshold"] == online.MANAGED_PROBE["failure_threshold"]


def test_the_kubernetes_deployment_sends_its_instance_type_resources_and_scaling(project: translate.Project):
    entities = _online(project, "prod")
    endpoint = wire(entities.endpoint)["properties"]
    assert (endpoint["authMode"], endpoint["compute"]) == (
        "Key",
        project.deployment_config(REPO / STAGES["prod"].config_file).computeTargetName,
    )
    sent = wire(entities.deployment)["properties"]
    assert sent["endpointComputeType"] == "Kubernetes"
    assert sent["instanceType"] == entities.instance_type["metadata"]["name"] == "ep-prod"
    resources = sent["containerResourceRequirements"]
    spec = entities.instance_type["spec"]["resources"]
    assert resources["containerResourceRequests"] == spec["requests"]
    assert resources["containerResourceLimits"] == spec["limits"]
    assert sent["scaleSettings"]["scaleType"] == "TargetUtilization"
    assert "mirrorTraffic" not in sent


def test_every_step_component_sends_its_version_command_and_interface(
    project: translate.Project, assets: render.TrainingAssets
):
    for step, component in assets.components.items():
        spec = wire(component)["properties"]["componentSpec"]
        assert (spec["name"], spec["version"]) == (component.name, component.version), step
        assert spec["command"].startswith("python "), step
        assert set(spec["inputs"]) | set(spec["outputs"]) == set(component.inputs) | set(component.outputs), step
    train = wire(assets.components["train"])["properties"]["componentSpec"]
    for name, (kind, value) in _hyperparameters(project).items():
        assert train["inputs"][name] == {"type": kind, "default": value, "description": f"--{name}"}
    assert wire(assets.components["evaluate"])["properties"]["componentSpec"]["is_deterministic"] is False


def test_the_pipeline_job_sends_the_settings_to_every_step(project: translate.Project, assets: render.TrainingAssets):
    sent = wire(assets.pipeline)["properties"]
    assert sent["jobType"] == "Pipeline"
    assert sent["experimentName"] == project.settings.experiment_name
    assert sent["settings"]["default_compute"] == project.runconfig.target
    assert sent["inputs"]["data"]["jobInputType"] == "uri_file"
    assert set(sent["jobs"]) == set(translate.STEPS)
    for step, node in sent["jobs"].items():
        assert node["environment_variables"]["AMLOPS_MODEL_NAME"] == project.settings.model_name, step


def test_the_command_job_sends_its_limits_and_inputs(project: translate.Project, assets: render.TrainingAssets):
    sent = wire(assets.train_job)["properties"]
    assert (sent["jobType"], sent["computeId"]) == ("Command", project.runconfig.target)
    for name, (_, value) in _hyperparameters(project).items():
        assert sent["inputs"][name] == {"value": value, "jobInputType": "literal"}
    assert isodate.parse_duration(sent["limits"]["timeout"]).total_seconds() == project.runconfig.maxRunDurationSeconds
    assert sent["resources"]["instanceCount"] == project.runconfig.nodeCount
    assert sent["environmentVariables"]["AMLOPS_MODEL_NAME"] == project.settings.model_name


def test_the_schedule_sends_a_disabled_cron_on_a_pinned_data_version(project: translate.Project):
    job = translate.scheduled_pipeline_job(project, "azureml:diabetes_ridge_training:3", "azureml:sales:2")
    sent = wire(translate.training_schedule(project, job, "0 6 * * 1"))["properties"]
    assert sent["isEnabled"] is False
    assert sent["trigger"] == {"triggerType": "Cron", "expression": "0 6 * * 1", "timeZone": "UTC"}
    definition = sent["action"]["jobDefinition"]
    assert definition["componentId"] == "azureml:diabetes_ridge_training:3"
    assert definition["inputs"]["data"] == {"uri": "azureml:sales:2", "jobInputType": "uri_file"}


def test_a_model_and_a_data_asset_send_their_type_and_tags(tmp_path: Path):
    from azure.ai.ml.constants import AssetTypes
    from azure.ai.ml.entities import Data, Model

    model = Model(
        name="m",
        path="azureml://jobs/job-42/outputs/trained/paths/model",
        type=AssetTypes.MLFLOW_MODEL,
        tags={"decision": "register"},
    )
    sent = wire(model)["properties"]
    assert (sent["modelType"], sent["modelUri"], sent["tags"]) == (
        "mlflow_model",
        "azureml://jobs/job-42/outputs/trained/paths/model",
        {"decision": "register"},
    )
    data = Data(name="sales", version="2", path="azureml://datastores/d/paths/x.csv", type=AssetTypes.URI_FILE)
    assert wire(data)["properties"]["dataType"] == "uri_file"


def test_integer_and_boolean_hyperparameters_keep_their_type_on_the_wire(tmp_path: Path):
    """An ``int`` param is an ``integer`` input: as a ``number`` it reached train.py as ``200.0``, which it refuses."""
    root = copy_project(tmp_path / "project")
    declared = yaml.safe_load((root / "contract.yml").read_text())
    declared["params"] |= {"trees": {"type": "int", "default": 200}, "robust": {"type": "bool", "default": False}}
    (root / "contract.yml").write_text(yaml.safe_dump(declared))
    project = translate.Project.load(ProjectSettings(root=root))
    assets = render.training_assets(project, tmp_path / "assets")
    train = wire(assets.components["train"])["properties"]["componentSpec"]
    assert train["inputs"]["trees"] == {"type": "integer", "default": "200", "description": "--trees"}
    assert train["inputs"]["robust"]["type"] == "boolean"
    assert wire(assets.train_job)["properties"]["inputs"]["trees"] == {"value": "200", "jobInputType": "literal"}
    assert project.settings.contract.params["trees"].parse("200") == 200
