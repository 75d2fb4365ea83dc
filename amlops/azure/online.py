"""The deployment files as v2 online endpoint and deployment entities (managed and Kubernetes): pure, no network."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from amlops.azure.translate import Project
from amlops.core import deployment_config as deployments
from amlops.core.config import ConfigError
from amlops.serving.deploy import scoring_limits
from amlops.serving.stage import StagedDeployment

#: VM size for a managed deployment, from v1's ``cpu``/``memoryInGB``: the first row whose limits hold both.
#: Rows and limits are Microsoft's ACI → managed online endpoint upgrade table ("(1, 2] cores, (1.7, 4.7] GB →
#: DS2 v2", ...; the memory limits leave room for the system), read as "first size that fits". They cover all of
#: ACI's range (up to 4 cores, 16 GB); anything larger needs ``instanceType``.
MANAGED_INSTANCE_TYPES: tuple[tuple[float, float, str], ...] = (
    # (max cpu cores, max memoryInGB, instance type)  # VM: vCPUs, GiB
    (1, 1.2, "Standard_DS1_v2"),  # 1, 3.5
    (2, 1.7, "Standard_F2s_v2"),  # 2, 4
    (2, 4.7, "Standard_DS2_v2"),  # 2, 7
    (2, 13.7, "Standard_E2s_v3"),  # 2, 16
    (4, 5.7, "Standard_F4s_v2"),  # 4, 8
    (4, 11.7, "Standard_DS3_v2"),  # 4, 14
    (4, 16, "Standard_E4s_v3"),  # 4, 32
)

#: Probes of a managed deployment (v1 ACI had none): v2's defaults, written out so the rendered file shows them.
MANAGED_PROBE = {"initial_delay": 10, "period": 10, "timeout": 2, "success_threshold": 1, "failure_threshold": 30}


def code_configuration(project: Project, code: str | Path) -> Any:
    """``CodeConfiguration``: the staged scoring code folder and ``entryScript``."""
    from azure.ai.ml.entities import CodeConfiguration

    return CodeConfiguration(code=str(code), scoring_script=project.inference.entryScript)


def instance_type_for(cpu: float, memory_gb: float, source: str = "deploymentConfig.yml") -> str:
    """The managed instance type for v1's ``cpu``/``memoryInGB`` (:data:`MANAGED_INSTANCE_TYPES`).

    Raises:
        ConfigError: beyond ACI's range; the message says to set ``instanceType``.
    """
    for max_cpu, max_memory, instance_type in MANAGED_INSTANCE_TYPES:
        if cpu <= max_cpu and memory_gb <= max_memory:
            return instance_type
    raise ConfigError(
        f"{source}: field 'containerResourceRequirements': {cpu:g} cores / {memory_gb:g} GB is beyond the ACI range "
        "the instance-type table covers (4 cores, 16 GB); set instanceType to a managed online endpoint VM size"
    )


def serving_environment_variables(deployment: deployments.ServingLimits, model_name: str, entry_script: str) -> dict:
    """The request and client limits, under the names the local endpoint uses too.

    Azure sets ``AZUREML_MODEL_DIR`` and the app root itself; only the project's own variables are passed, and
    ``GUNICORN_CMD_ARGS``: the inference server in Azure ML's image starts gunicorn, which reads it, so the
    deployment runs the same threaded workers as the local endpoint.
    """
    staged = StagedDeployment(Path("."), entry_script, model_name, "0", scoring_limits(deployment))
    return {
        name: value
        for name, value in staged.environment().items()
        if name.startswith("AMLOPS_") or name == "GUNICORN_CMD_ARGS"
    }


def _data_collector(collection: deployments.DataCollection | None) -> Any:
    """v1 ``dataCollection.storageEnabled`` → v2 payload logging of requests and responses."""
    if collection is None or not collection.storageEnabled:
        return None
    from azure.ai.ml.entities import DataCollector, DeploymentCollection

    return DataCollector(
        collections={name: DeploymentCollection(enabled="true") for name in ("request", "response")},
    )


#: The Kubernetes resource Azure ML's cluster extension reads instance types from.
INSTANCE_TYPE_API_VERSION = "amlarc.azureml.com/v1alpha1"


@dataclass(frozen=True)
class OnlineEntities:
    """An endpoint and one deployment under it.

    Attributes:
        endpoint: The online endpoint entity.
        deployment: The online deployment entity.
        instance_type: For a Kubernetes deployment whose config names no ``instanceType``: the ``InstanceType``
            resource the deployment names (a Kubernetes manifest, applied to the cluster once with ``kubectl``).
    """

    endpoint: Any
    deployment: Any
    instance_type: dict | None = None

    @property
    def kind(self) -> str:
        """``managed`` or ``kubernetes``."""
        return "kubernetes" if type(self.endpoint).__name__.startswith("Kubernetes") else "managed"


def online_entities(
    project: Project,
    deployment_config: deployments.AciDeploymentConfig | deployments.AksDeploymentConfig,
    *,
    endpoint_name: str,
    deployment_name: str,
    model: str,
    code: str | Path,
    environment: Any,
    source: str = "deploymentConfig.yml",
) -> OnlineEntities:
    """The endpoint and deployment for a deployment config: ACI → managed, AKS → Kubernetes.

    Args:
        project: The parsed project files.
        deployment_config: The parsed deployment config.
        endpoint_name: The endpoint's name.
        deployment_name: The deployment's name (blue/green: a new one beside the live one).
        model: ``azureml:<name>:<version>`` (or ``azureml:<name>@latest``).
        code: The staged scoring code folder.
        environment: The scoring environment.
        source: The deployment config's path, for messages.
    """
    common = {
        "name": deployment_name,
        "endpoint_name": endpoint_name,
        "model": model,
        "code_configuration": code_configuration(project, code),
        "environment": environment,
        "app_insights_enabled": deployment_config.appInsightsEnabled,
        "environment_variables": serving_environment_variables(
            deployment_config, project.settings.model_name, project.inference.entryScript
        ),
        "description": deployment_config.description,
        "tags": dict(deployment_config.tags),
        "properties": dict(deployment_config.properties),
        "data_collector": _data_collector(deployment_config.dataCollection),
    }
    if isinstance(deployment_config, deployments.AciDeploymentConfig):
        return _managed(deployment_config, endpoint_name, common, source)
    return _kubernetes(deployment_config, endpoint_name, common)


def _managed(deployment_config: deployments.AciDeploymentConfig, endpoint_name: str, common: dict, source: str) -> Any:
    from azure.ai.ml.entities import (
        ManagedOnlineDeployment,
        ManagedOnlineEndpoint,
        OnlineRequestSettings,
        ProbeSettings,
    )

    resources = deployment_config.containerResourceRequirements
    endpoint = ManagedOnlineEndpoint(
        name=endpoint_name,
        auth_mode="key",  # authEnabled (false is refused when the file is read)
        description=deployment_config.description,
        tags=dict(deployment_config.tags),
    )
    deployment = ManagedOnlineDeployment(
        **common,
        instance_type=deployment_config.instanceType or instance_type_for(resources.cpu, resources.memoryInGB, source),
        instance_count=deployment_config.instanceCount,
        request_settings=OnlineRequestSettings(
            request_timeout_ms=deployment_config.scoringTimeoutMs,
            # One gunicorn worker serves each instance (the inference server's default).
            max_concurrent_requests_per_instance=1,
        ),
        liveness_probe=ProbeSettings(**MANAGED_PROBE),
        readiness_probe=ProbeSettings(**MANAGED_PROBE),
    )
    return OnlineEntities(endpoint, deployment)


def _quantity_cpu(cores: float) -> str:
    return f"{cores:g}"


def _quantity_memory(gigabytes: float) -> str:
    # v1's memoryInGB is read as GiB, the unit Kubernetes memory requests are usually written in.
    return f"{gigabytes:g}Gi"


def _kubernetes(deployment_config: deployments.AksDeploymentConfig, endpoint_name: str, common: dict) -> Any:
    from azure.ai.ml.entities import (
        DefaultScaleSettings,
        KubernetesOnlineDeployment,
        KubernetesOnlineEndpoint,
        OnlineRequestSettings,
        ProbeSettings,
        ResourceRequirementsSettings,
        ResourceSettings,
        TargetUtilizationScaleSettings,
    )

    resources = deployment_config.containerResourceRequirements
    gpu = str(deployment_config.gpuCores) if deployment_config.gpuCores else None
    limits = None
    if resources.cpuLimit or resources.memoryInGBLimit or gpu:
        limits = ResourceSettings(
            cpu=_quantity_cpu(resources.cpuLimit) if resources.cpuLimit else None,
            memory=_quantity_memory(resources.memoryInGBLimit) if resources.memoryInGBLimit else None,
            gpu=gpu,  # Kubernetes requires GPU requests and limits to be equal
        )
    if deployment_config.autoscale:
        scaler = deployment_config.autoScaler or deployments.AutoScaler()
        scale_settings = TargetUtilizationScaleSettings(
            min_instances=scaler.minReplicas,
            max_instances=scaler.maxReplicas,
            polling_interval=scaler.refreshPeriodInSeconds,
            target_utilization_percentage=scaler.targetUtilization,
        )
        instance_count = scaler.minReplicas
    else:
        scale_settings = DefaultScaleSettings()
        instance_count = deployment_config.numReplicas or 1
    probe = deployment_config.livenessProbeRequirements
    endpoint = KubernetesOnlineEndpoint(
        name=endpoint_name,
        compute=deployment_config.computeTargetName,
        auth_mode=deployment_config.auth_mode,
        description=deployment_config.description,
        tags=dict(deployment_config.tags),
    )
    instance_type = None if deployment_config.instanceType else instance_type_manifest(deployment_config, endpoint_name)
    deployment = KubernetesOnlineDeployment(
        **common,
        instance_type=deployment_config.instanceType or endpoint_name,
        instance_count=instance_count,
        scale_settings=scale_settings,
        resources=ResourceRequirementsSettings(
            requests=ResourceSettings(
                cpu=_quantity_cpu(resources.cpu), memory=_quantity_memory(resources.memoryInGB), gpu=gpu
            ),
            limits=limits,
        ),
        request_settings=OnlineRequestSettings(
            request_timeout_ms=deployment_config.scoringTimeoutMs,
            max_concurrent_requests_per_instance=deployment_config.maxConcurrentRequestsPerContainer,
            max_queue_wait_ms=deployment_config.maxQueueWaitMs,
        ),
        liveness_probe=ProbeSettings(
            period=probe.periodSeconds,
            initial_delay=probe.initialDelaySeconds,
            timeout=probe.timeoutSeconds,
            failure_threshold=probe.failureThreshold,
            success_threshold=probe.successThreshold,
        ),
    )
    return OnlineEntities(endpoint, deployment, instance_type)


def instance_type_manifest(deployment_config: deployments.AksDeploymentConfig, name: str) -> dict:
    """The Kubernetes ``InstanceType`` a deployment runs under: its requests, and its limits (the requests if none).

    Without one, Azure ML's extension puts a deployment in the cluster's ``defaultinstancetype``, whose limits
    need not hold the deployment's: the deployment's requests and limits are this instance type's, so they fit.
    """
    resources = deployment_config.containerResourceRequirements
    requests = {"cpu": _quantity_cpu(resources.cpu), "memory": _quantity_memory(resources.memoryInGB)}
    limits = {
        "cpu": _quantity_cpu(resources.cpuLimit or resources.cpu),
        "memory": _quantity_memory(resources.memoryInGBLimit or resources.memoryInGB),
    }
    if deployment_config.gpuCores:
        limits["nvidia.com/gpu"] = str(deployment_config.gpuCores)
    return {
        "apiVersion": INSTANCE_TYPE_API_VERSION,
        "kind": "InstanceType",
        "metadata": {"name": name},
        "spec": {"resources": {"requests": requests, "limits": limits}},
    }


def model_reference(name: str, version: str | None) -> str:
    """``azureml:<name>:<version>``, or ``azureml:<name>@latest`` when no version is given."""
    return f"azureml:{name}:{version}" if version and version != "latest" else f"azureml:{name}@latest"
