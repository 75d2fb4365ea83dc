"""Every v1 field of the deployment configs is translated into its v2 counterpart, or refused with why."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from amlops.azure import online, translate
from amlops.core import config, deployment_config
from amlops.core.azure_settings import AzureSettings
from amlops.core.names import STAGES
from amlops.core.settings import ProjectSettings, ScoringSettings
from amlops.serving.stage import StagedDeployment
from tests.support.checkout import REPO
from tests.support.project import CONTRACT

pytestmark = [
    pytest.mark.filterwarnings("ignore::marshmallow.warnings.ChangedInMarshmallow4Warning"),
    pytest.mark.filterwarnings("ignore::marshmallow.warnings.RemovedInMarshmallow4Warning"),
]

FULL_ACI = {
    "computeType": "ACI",
    "containerResourceRequirements": {"cpu": 1.5, "memoryInGB": 4},
    "authEnabled": True,
    "sslEnabled": True,
    "appInsightsEnabled": True,
    "description": "pre-production",
    "tags": {"team": "ml"},
    "properties": {"owner": "ops"},
    "dataCollection": {"storageEnabled": True},
    "instanceCount": 2,
    "scoringTimeoutMs": 90000,
    "maxBatchRows": 500,
    "maxRequestBytes": 65536,
}

FULL_AKS = {
    "computeType": "AKS",
    "computeTargetName": "k8s-prod",
    "containerResourceRequirements": {"cpu": 0.5, "memoryInGB": 1.5, "cpuLimit": 2, "memoryInGBLimit": 3},
    "autoScaler": {
        "autoscaleEnabled": True,
        "minReplicas": 2,
        "maxReplicas": 6,
        "refreshPeriodInSeconds": 15,
        "targetUtilization": 60,
    },
    "gpuCores": 1,
    "authEnabled": True,
    "tokenAuthEnabled": False,
    "appInsightsEnabled": True,
    "scoringTimeoutMs": 45000,
    "maxConcurrentRequestsPerContainer": 2,
    "maxQueueWaitMs": 750,
    "livenessProbeRequirements": {
        "periodSeconds": 11,
        "initialDelaySeconds": 42,
        "timeoutSeconds": 3,
        "failureThreshold": 4,
        "successThreshold": 2,
    },
    "dataCollection": {"storageEnabled": True},
    "description": "production",
    "tags": {"team": "ml"},
    "properties": {"owner": "ops"},
    "instanceType": "cpu-large",
    "maxBatchRows": 800,
    "maxRequestBytes": 131072,
    "connectionThreads": 24,
    "clientTimeoutSeconds": 5,
}


def _write(tmp_path: Path, content: dict, name: str = "deploymentConfig.yml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(content))
    return path


@pytest.fixture(scope="module")
def project() -> translate.Project:
    return translate.Project.load(ProjectSettings(root=REPO))


def _entities(project: translate.Project, deployment_config) -> online.OnlineEntities:
    return online.online_entities(
        project,
        deployment_config,
        endpoint_name="ep-test",
        deployment_name="green",
        model="azureml:my-model:3",
        code=REPO,
        environment=translate.scoring_environment(project),
    )


def test_full_aci_config_translates_every_field(tmp_path: Path, project: translate.Project):
    parsed = deployment_config.load_deployment_config(_write(tmp_path, FULL_ACI))
    entities = _entities(project, parsed)
    endpoint, deployment = entities.endpoint, entities.deployment
    assert entities.kind == "managed"
    assert type(endpoint).__name__ == "ManagedOnlineEndpoint"
    assert endpoint.name == "ep-test"
    assert endpoint.auth_mode == "key"  # authEnabled
    assert endpoint.description == deployment.description == "pre-production"
    assert endpoint.tags == deployment.tags == {"team": "ml"}
    assert deployment.properties == {"owner": "ops"}
    assert deployment.instance_type == "Standard_DS2_v2"  # cpu 1.5, memoryInGB 4
    assert deployment.instance_count == 2
    assert deployment.app_insights_enabled is True
    assert deployment.request_settings.request_timeout_ms == 90000
    assert deployment.request_settings.max_concurrent_requests_per_instance == 1
    assert deployment.liveness_probe.failure_threshold == online.MANAGED_PROBE["failure_threshold"]
    assert deployment.readiness_probe.initial_delay == online.MANAGED_PROBE["initial_delay"]
    assert set(deployment.data_collector.collections) == {"request", "response"}  # dataCollection
    assert deployment.model == "azureml:my-model:3"
    assert deployment.code_configuration.scoring_script == "score.py"
    # The limits travel under the names the local endpoint uses (one definition), and the server's threaded
    # workers as the gunicorn arguments azmlinfsrv's gunicorn reads, as the local one does.
    limits = ScoringSettings(max_batch_rows=500, max_request_bytes=65536)
    staged = StagedDeployment(Path("."), "score.py", "m", "1", limits)
    expected = {k: v for k, v in staged.environment().items() if k.startswith(("AMLOPS_SCORING_", "GUNICORN_"))}
    assert deployment.environment_variables == expected
    assert expected["GUNICORN_CMD_ARGS"] == "--worker-class gthread --threads 32"


def test_committed_preprod_config_is_a_small_managed_deployment(project: translate.Project):
    from azure.ai.ml.constants._deployment import SmallSKUs  # the sizes the SDK warns about on create

    parsed = project.deployment_config(REPO / "deploymentConfig.yml")
    deployment = _entities(project, parsed).deployment
    assert deployment.instance_type == "Standard_DS3_v2"
    assert deployment.instance_type.lower() not in SmallSKUs
    assert online.instance_type_for(parsed.containerResourceRequirements.cpu, 2) == "Standard_DS2_v2"  # the table's
    assert deployment.data_collector is None
    assert deployment.environment_variables["AMLOPS_SCORING_MAX_BATCH_ROWS"] == "10000"


def test_full_aks_config_translates_every_field(tmp_path: Path, project: translate.Project):
    parsed = deployment_config.load_deployment_config(_write(tmp_path, FULL_AKS))
    entities = _entities(project, parsed)
    endpoint, deployment = entities.endpoint, entities.deployment
    assert entities.kind == "kubernetes"
    assert type(endpoint).__name__ == "KubernetesOnlineEndpoint"
    assert endpoint.compute == "k8s-prod"  # computeTargetName
    assert endpoint.auth_mode == "key"
    assert endpoint.tags == deployment.tags == {"team": "ml"}
    assert endpoint.description == "production"
    requests, limits = deployment.resources.requests, deployment.resources.limits
    assert (requests.cpu, requests.memory, requests.gpu) == ("0.5", "1.5Gi", "1")
    assert (limits.cpu, limits.memory, limits.gpu) == ("2", "3Gi", "1")  # gpuCores: request = limit
    scale = deployment.scale_settings
    assert type(scale).__name__ == "TargetUtilizationScaleSettings"
    assert (scale.min_instances, scale.max_instances, scale.polling_interval, scale.target_utilization_percentage) == (
        2,
        6,
        15,
        60,
    )
    assert deployment.instance_count == 2  # starts at minReplicas
    settings = deployment.request_settings
    assert (settings.request_timeout_ms, settings.max_concurrent_requests_per_instance, settings.max_queue_wait_ms) == (
        45000,
        2,
        750,
    )
    probe = deployment.liveness_probe
    assert (probe.period, probe.initial_delay, probe.timeout, probe.failure_threshold, probe.success_threshold) == (
        11,
        42,
        3,
        4,
        2,
    )
    assert deployment.app_insights_enabled is True
    assert deployment.instance_type == "cpu-large"
    assert set(deployment.data_collector.collections) == {"request", "response"}
    assert deployment.properties == {"owner": "ops"}
    assert deployment.environment_variables["AMLOPS_SCORING_MAX_BATCH_ROWS"] == "800"
    assert deployment.environment_variables["AMLOPS_SCORING_CLIENT_TIMEOUT_SECONDS"] == "5.0"
    assert deployment.environment_variables["GUNICORN_CMD_ARGS"] == "--worker-class gthread --threads 24"


def test_aks_fixed_replicas_and_token_auth(tmp_path: Path, project: translate.Project):
    content = {
        "computeType": "aks",  # v1 accepted any case
        "computeTargetName": "k8s",
        "containerResourceRequirements": {"cpu": 1, "memoryInGB": 2},
        "numReplicas": 3,
        "tokenAuthEnabled": True,
    }
    parsed = deployment_config.load_deployment_config(_write(tmp_path, content))
    entities = _entities(project, parsed)
    assert entities.endpoint.auth_mode == "aml_token"
    assert type(entities.deployment.scale_settings).__name__ == "DefaultScaleSettings"
    assert entities.deployment.instance_count == 3
    assert entities.deployment.resources.limits is None
    # v1 defaults when the file leaves them out
    assert entities.deployment.request_settings.request_timeout_ms == 60000
    assert entities.deployment.request_settings.max_queue_wait_ms == 500
    assert entities.deployment.liveness_probe.initial_delay == 310


def test_aks_autoscales_by_default_when_no_replica_count(tmp_path: Path, project: translate.Project):
    content = {
        "computeType": "AKS",
        "computeTargetName": "k8s",
        "containerResourceRequirements": {"cpu": 1, "memoryInGB": 2},
    }
    entities = _entities(project, deployment_config.load_deployment_config(_write(tmp_path, content)))
    scale = entities.deployment.scale_settings
    assert (scale.min_instances, scale.max_instances, scale.target_utilization_percentage) == (1, 10, 70)


def test_committed_production_config_is_kubernetes(project: translate.Project):
    parsed = project.deployment_config(REPO / STAGES["prod"].config_file)
    assert isinstance(parsed, deployment_config.AksDeploymentConfig)
    entities = _entities(project, parsed)
    assert entities.endpoint.compute == parsed.computeTargetName
    assert entities.deployment.liveness_probe.initial_delay == parsed.livenessProbeRequirements.initialDelaySeconds


def test_the_production_deployment_runs_under_an_instance_type_that_holds_it(
    project: translate.Project, tmp_path: Path
):
    """Not the cluster's default instance type: one of its own, whose requests and limits are the deployment's."""
    parsed = project.deployment_config(REPO / STAGES["prod"].config_file)
    entities = _entities(project, parsed)
    manifest = entities.instance_type
    assert (manifest["apiVersion"], manifest["kind"]) == (online.INSTANCE_TYPE_API_VERSION, "InstanceType")
    assert entities.deployment.instance_type == manifest["metadata"]["name"] == "ep-test"
    resources = entities.deployment.resources
    assert manifest["spec"]["resources"]["requests"] == {
        "cpu": resources.requests.cpu,
        "memory": resources.requests.memory,
    }
    assert manifest["spec"]["resources"]["limits"] == {"cpu": resources.limits.cpu, "memory": resources.limits.memory}
    no_limits = parsed.model_copy(
        update={
            "containerResourceRequirements": parsed.containerResourceRequirements.model_copy(
                update={"cpuLimit": None, "memoryInGBLimit": None}
            )
        }
    )
    assert _entities(project, no_limits).instance_type["spec"]["resources"]["limits"] == {"cpu": "0.5", "memory": "1Gi"}
    named = _entities(project, parsed.model_copy(update={"instanceType": "gpu-large"}))
    assert (named.deployment.instance_type, named.instance_type) == ("gpu-large", None)  # the cluster's own


@pytest.mark.parametrize("field", sorted(deployment_config.ACI_REJECTED))
def test_aci_fields_a_managed_endpoint_cannot_honour_are_refused(tmp_path: Path, field: str):
    path = _write(tmp_path, {**FULL_ACI, field: "something"})
    with pytest.raises(config.ConfigError) as raised:
        deployment_config.load_deployment_config(path)
    message = str(raised.value)
    assert f"{path}: field '{field}'" in message
    assert deployment_config.ACI_REJECTED[field] in message  # says why, and what to do instead


@pytest.mark.parametrize("field", sorted(deployment_config.AKS_REJECTED))
def test_aks_fields_a_kubernetes_endpoint_cannot_honour_are_refused(tmp_path: Path, field: str):
    path = _write(tmp_path, {**FULL_AKS, field: {"primaryKey": "x"} if field == "keys" else "x"})
    with pytest.raises(config.ConfigError, match=rf"field '{field}': .*{deployment_config.AKS_REJECTED[field][:30]}"):
        deployment_config.load_deployment_config(path)


@pytest.mark.parametrize(
    ("content", "field", "words"),
    [
        ({**FULL_ACI, "authEnabled": False}, "authEnabled", "anonymous"),
        (
            {**FULL_ACI, "containerResourceRequirements": {"cpu": 1, "memoryInGB": 2, "cpuLimit": 2}},
            "containerResourceRequirements.cpuLimit",
            "whole VM",
        ),
        (
            {**FULL_ACI, "containerResourceRequirements": {"cpu": 1, "memoryInGB": 2, "gpu": 1}},
            "containerResourceRequirements.gpu",
            "instanceType",
        ),
        ({**FULL_ACI, "scoringTimeoutMs": 200000}, "scoringTimeoutMs", "180000"),
        ({**FULL_AKS, "tokenAuthEnabled": True}, "tokenAuthEnabled", "cannot both"),
        ({**FULL_AKS, "authEnabled": False}, "authEnabled", "key or token"),
        ({**FULL_AKS, "numReplicas": 2}, "numReplicas", "autoscaleEnabled"),
        (
            {**FULL_AKS, "autoScaler": {"minReplicas": 4, "maxReplicas": 2}},
            "autoScaler.maxReplicas",
            "below minReplicas",
        ),
        (
            {**FULL_AKS, "containerResourceRequirements": {"cpu": 1, "memoryInGB": 1, "gpu": 1}},
            "containerResourceRequirements.gpu",
            "gpuCores",
        ),
        ({k: v for k, v in FULL_AKS.items() if k != "computeTargetName"}, "computeTargetName", "required"),
    ],
)
def test_inconsistent_values_are_refused_with_the_field_named(tmp_path: Path, content: dict, field: str, words: str):
    path = _write(tmp_path, content)
    with pytest.raises(config.ConfigError) as raised:
        deployment_config.load_deployment_config(path)
    assert f"{path}: field '{field}'" in str(raised.value)
    assert words in str(raised.value)


@pytest.mark.parametrize(
    ("content", "field"),
    [
        ({**FULL_ACI, "autoScaler": {"minReplicas": 1}}, "autoScaler"),  # an AKS field on ACI
        ({**FULL_ACI, "memoryInGb": 2}, "memoryInGb"),  # mistyped
        ({**FULL_AKS, "autoScaler": {"minReplica": 1}}, "autoScaler.minReplica"),
        (
            {**FULL_AKS, "livenessProbeRequirements": {"periodSeconds": "often"}},
            "livenessProbeRequirements.periodSeconds",
        ),
        ({**FULL_AKS, "maxConcurrentRequestsPerContainer": 0}, "maxConcurrentRequestsPerContainer"),
        ({**FULL_AKS, "containerResourceRequirements": {"cpu": 1}}, "containerResourceRequirements.memoryInGB"),
    ],
)
def test_unknown_or_mistyped_fields_name_file_and_field(tmp_path: Path, content: dict, field: str):
    path = _write(tmp_path, content)
    with pytest.raises(config.ConfigError, match=rf"{path}: field '{field}'"):
        deployment_config.load_deployment_config(path)


@pytest.mark.parametrize(
    ("cpu", "memory", "expected"),
    [
        # Microsoft's ACI → managed online endpoint table, cell by cell
        (0.5, 1.0, "Standard_DS1_v2"),
        (1, 1.2, "Standard_DS1_v2"),
        (2, 1.5, "Standard_F2s_v2"),
        (2, 4.7, "Standard_DS2_v2"),
        (1.5, 8, "Standard_E2s_v3"),
        (2, 13.7, "Standard_E2s_v3"),
        (3, 5.7, "Standard_F4s_v2"),
        (4, 11.7, "Standard_DS3_v2"),
        (4, 16, "Standard_E4s_v3"),
        # gaps in the table: the first size that fits
        (1, 2, "Standard_DS2_v2"),
        (0.1, 14, "Standard_E4s_v3"),
    ],
)
def test_instance_type_table(cpu: float, memory: float, expected: str):
    assert online.instance_type_for(cpu, memory) == expected


@pytest.mark.parametrize(("cpu", "memory"), [(5, 2), (2, 17)])
def test_beyond_the_table_asks_for_an_instance_type(cpu: float, memory: float):
    with pytest.raises(config.ConfigError, match="instanceType"):
        online.instance_type_for(cpu, memory, source="dc.yml")


def test_instance_type_overrides_the_table(tmp_path: Path, project: translate.Project):
    content = {**FULL_ACI, "containerResourceRequirements": {"cpu": 8, "memoryInGB": 64, "gpu": 1}}
    content["instanceType"] = "Standard_NC4as_T4_v3"
    deployment = _entities(project, deployment_config.load_deployment_config(_write(tmp_path, content))).deployment
    assert deployment.instance_type == "Standard_NC4as_T4_v3"


def test_local_config_is_not_an_azure_target(project: translate.Project):
    with pytest.raises(config.ConfigError, match="Azure needs ACI"):
        project.deployment_config(REPO / "deploymentConfig.local.yml")


@pytest.mark.parametrize("field", sorted(config.INFERENCE_REJECTED))
def test_inference_config_v1_image_fields_are_refused(tmp_path: Path, field: str):
    path = _write(tmp_path, {"entryScript": "score.py", "condaFile": "env.yml", field: "x"}, "inferenceConfig.yml")
    with pytest.raises(config.ConfigError, match=rf"inferenceConfig.yml: field '{field}'"):
        config.load_inference_config(path)


def test_inference_base_image_becomes_the_scoring_image(tmp_path: Path):
    root = tmp_path / "project"
    root.mkdir()
    for name in ("sklearn.runconfig", "myenv.yml", "score.py", "train.py", "contract.yml"):
        (root / name).write_text((REPO / name).read_text())
    (root / "environments").mkdir()
    (root / "environments" / "score.yml").write_text((REPO / "environments" / "score.yml").read_text())
    inference = yaml.safe_load((REPO / "inferenceConfig.yml").read_text()) | {"baseImage": "myacr.azurecr.io/base:1"}
    (root / "inferenceConfig.yml").write_text(yaml.safe_dump(inference))
    project = translate.Project.load(ProjectSettings(root=root))
    assert translate.scoring_environment(project).image == "myacr.azurecr.io/base:1"
    default = translate.scoring_environment(translate.Project.load(ProjectSettings(root=REPO)))
    assert default.image == translate.DEFAULT_SCORING_IMAGE


@pytest.mark.parametrize(
    ("arguments", "words"),
    [
        (["--data", "x"], "set by the pipeline"),
        (["--alpha"], "has no value"),
        (["0.5"], "not a --flag"),
        (["--alpha", "--beta", 1], "has no value"),
    ],
)
def test_runconfig_arguments_must_be_flag_value_pairs(arguments: list, words: str):
    runconfig = config.load_runconfig(REPO / "sklearn.runconfig").model_copy(update={"arguments": arguments})
    with pytest.raises(config.ConfigError, match=rf"field 'arguments': .*{words}"):
        translate.hyperparameters(runconfig)


def test_runconfig_arguments_become_typed_inputs():
    runconfig = config.load_runconfig(REPO / "sklearn.runconfig").model_copy(
        update={"arguments": ["--alpha", 0.5, "--max-iter", 100, "--solver", "svd", "--fit-intercept", True]}
    )
    found = {p.name: (p.flag, p.input_type) for p in translate.hyperparameters(runconfig)}
    assert found == {
        "alpha": ("--alpha", "number"),
        "max_iter": ("--max-iter", "integer"),
        "solver": ("--solver", "string"),
        "fit_intercept": ("--fit-intercept", "boolean"),
    }


def test_endpoint_names_come_from_settings_and_are_checked(monkeypatch: pytest.MonkeyPatch):
    project = ProjectSettings(root=REPO, model_name="my-model")
    assert AzureSettings().endpoint_name("preprod", project) == "my-model-preprod"
    monkeypatch.setenv("AMLOPS_AZURE_PROD_ENDPOINT", "contoso-scoring-prod")
    assert AzureSettings().endpoint_name("prod", project) == "contoso-scoring-prod"
    monkeypatch.setenv("AMLOPS_AZURE_PROD_ENDPOINT", "9-bad_name")
    with pytest.raises(config.ConfigError, match="AMLOPS_AZURE_PROD_ENDPOINT"):
        AzureSettings().endpoint_name("prod", project)


def test_the_inputs_are_the_contracts_params_valued_by_the_arguments(tmp_path: Path):
    contract = CONTRACT
    runconfig = config.load_runconfig(REPO / "sklearn.runconfig")
    assert [(p.name, p.flag, p.value) for p in translate.hyperparameters(runconfig, contract=contract)] == [
        ("alpha", "--alpha", 1.0)
    ]
    overridden = runconfig.model_copy(update={"arguments": ["--alpha", 0.5]})
    assert [p.value for p in translate.hyperparameters(overridden, contract=contract)] == [0.5]
    assert [
        p.value
        for p in translate.hyperparameters(
            runconfig.model_copy(update={"arguments": ["--alpha", 2]}), contract=contract
        )
    ] == [2.0]
    mistyped = runconfig.model_copy(update={"arguments": ["--alpha", "strong"]})
    with pytest.raises(
        config.ConfigError, match=r"field 'arguments': --alpha: expected a value of type float, got 'strong'"
    ):
        translate.hyperparameters(mistyped, "sklearn.runconfig", contract)
    stray = runconfig.model_copy(update={"arguments": ["--n-estimators", 10]})
    with pytest.raises(config.ConfigError, match=r"--n-estimators is not a hyperparameter of contract\.yml"):
        translate.hyperparameters(stray, "sklearn.runconfig", contract)
