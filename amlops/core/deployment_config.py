"""``deploymentConfig*.yml``: the real-time deployment in the v1 vocabulary (``computeType`` local, ACI or AKS)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, ValidationError, field_validator, model_validator

from amlops.core.config import COMPUTE_TYPES, ConfigError, V1Model, explain, read_yaml, refused


class ServingLimits(V1Model):
    """Request and client limits the scoring server enforces (not in v1; optional in every deployment config)."""

    maxBatchRows: int | None = Field(default=None, ge=1)
    maxRequestBytes: int | None = Field(default=None, ge=64)
    connectionThreads: int | None = Field(
        default=None, ge=2, le=256, description="Extension: threads per worker holding client connections."
    )
    clientTimeoutSeconds: float | None = Field(
        default=None, gt=0, le=300, description="Extension: how long a client may stall sending or reading."
    )


class LocalDeploymentConfig(ServingLimits):
    """``computeType: local``: the Azure inference server run by gunicorn on this machine."""

    computeType: Literal["local"]
    host: str = "127.0.0.1"
    port: int = Field(default=0, ge=0, le=65535, description="0 picks a free port.")
    workers: int = Field(default=1, ge=1, le=64)
    scoringTimeoutMs: int = Field(default=60_000, gt=0)
    startupTimeoutSeconds: float = Field(default=60.0, gt=0)


class ContainerResources(V1Model):
    """``containerResourceRequirements``: CPU cores and memory per container (and optional limits, GPUs)."""

    cpu: float = Field(gt=0)
    memoryInGB: float = Field(gt=0)
    cpuLimit: float | None = Field(default=None, gt=0)
    memoryInGBLimit: float | None = Field(default=None, gt=0)
    gpu: int | None = Field(default=None, ge=0)


class DataCollection(V1Model):
    """``dataCollection``: v1 model data collection (v2: the deployment's data collector)."""

    storageEnabled: bool = False


class AutoScaler(V1Model):
    """``autoScaler`` (AKS): v1 defaults kept."""

    autoscaleEnabled: bool | None = Field(default=None, description="Default: true unless numReplicas is set.")
    minReplicas: int = Field(default=1, ge=1)
    maxReplicas: int = Field(default=10, ge=1)
    refreshPeriodInSeconds: int = Field(default=1, ge=1)
    targetUtilization: int = Field(default=70, ge=1, le=100)

    @model_validator(mode="after")
    def _replica_range(self) -> AutoScaler:
        if self.maxReplicas < self.minReplicas:
            raise ValueError(f"maxReplicas: {self.maxReplicas} is below minReplicas {self.minReplicas}")
        return self


class LivenessProbeRequirements(V1Model):
    """``livenessProbeRequirements`` (AKS): v1 defaults kept (note the long initial delay)."""

    periodSeconds: int = Field(default=10, ge=1)
    initialDelaySeconds: int = Field(default=310, ge=1)
    timeoutSeconds: int = Field(default=2, ge=1)
    failureThreshold: int = Field(default=3, ge=1)
    successThreshold: int = Field(default=1, ge=1)


#: Managed online endpoints cap the scoring timeout at 180 s.
MANAGED_MAX_TIMEOUT_MS = 180_000

#: v1 fields that cannot be honoured by a managed online endpoint (``computeType: ACI``), and why.
ACI_REJECTED: dict[str, str] = {
    "location": (
        "a managed online endpoint is always created in the workspace's region; remove the field, or use a "
        "workspace in that region"
    ),
    "sslCertificate": (
        "managed online endpoints always serve HTTPS with Azure's certificate for "
        "<endpoint>.<region>.inference.ml.azure.com and cannot use your own; remove sslCertificate/sslKey/cname, "
        "or put Azure Front Door / Application Gateway with your certificate in front of the endpoint"
    ),
    "sslKey": (
        "managed online endpoints always serve HTTPS with Azure's certificate; remove the field (see sslCertificate)"
    ),
    "cname": "custom DNS names are not supported by managed online endpoints; remove the field (see sslCertificate)",
    "dnsNameLabel": (
        "the scoring host name is <endpoint name>.<region>.inference.ml.azure.com; choose the endpoint name "
        "instead (AMLOPS_AZURE_PREPROD_ENDPOINT) and remove the field"
    ),
    "keys": (
        "v2 generates endpoint keys and does not take them from a file (keys do not belong in a committed file "
        "either); read them with `python -m amlops azure endpoint --show-keys`, rotate them with "
        "`az ml online-endpoint regenerate-keys`"
    ),
    "cmkVaultBaseUrl": (
        "customer-managed keys are a workspace setting in v2 (create the workspace with encryption); remove "
        "cmkVaultBaseUrl/cmkKeyName/cmkKeyVersion"
    ),
    "cmkKeyName": "customer-managed keys are a workspace setting in v2; remove the field (see cmkVaultBaseUrl)",
    "cmkKeyVersion": "customer-managed keys are a workspace setting in v2; remove the field (see cmkVaultBaseUrl)",
    "vnetName": (
        "managed online endpoints are isolated with the workspace's managed virtual network and a private "
        "endpoint, not by joining your VNet; remove vnetName/subnetName and configure network isolation on the "
        "workspace"
    ),
    "subnetName": "managed online endpoints do not join a subnet; remove the field (see vnetName)",
}

#: v1 fields that cannot be honoured by a Kubernetes online endpoint (``computeType: AKS``), and why.
AKS_REJECTED: dict[str, str] = {
    "keys": ACI_REJECTED["keys"],
    "namespace": (
        "in v2 the namespace is fixed when the cluster is attached as a Kubernetes compute "
        "(`az ml compute attach --type Kubernetes --namespace ...`); remove the field and attach the compute "
        "with that namespace"
    ),
    "blobfuseEnabled": "v2 Kubernetes deployments mount the model themselves; remove the field",
}


class AciDeploymentConfig(ServingLimits):
    """``computeType: ACI``: v1's test deployment; here, the pre-production managed online endpoint.

    Fields marked *extension* are not v1 fields; everything else keeps v1's name. Fields in
    :data:`ACI_REJECTED` are refused with the reason and the replacement.
    """

    computeType: Literal["ACI"]
    containerResourceRequirements: ContainerResources
    authEnabled: bool = Field(default=True, description="Managed endpoints always authenticate: false is refused.")
    appInsightsEnabled: bool = False
    sslEnabled: bool = Field(default=False, description="Managed endpoints always serve HTTPS, whatever this says.")
    description: str | None = None
    tags: dict[str, str] = Field(default_factory=dict)
    properties: dict[str, str] = Field(default_factory=dict)
    dataCollection: DataCollection | None = None
    instanceType: str | None = Field(
        default=None, description="Extension: the VM size, instead of the one chosen from cpu/memoryInGB."
    )
    instanceCount: int = Field(default=1, ge=1, description="Extension: instances behind the endpoint.")
    scoringTimeoutMs: int = Field(
        default=60_000, gt=0, le=MANAGED_MAX_TIMEOUT_MS, description="Extension: request timeout (v2 maximum 180 s)."
    )
    location: Any = None
    sslCertificate: Any = None
    sslKey: Any = None
    cname: Any = None
    dnsNameLabel: Any = None
    keys: Any = None
    cmkVaultBaseUrl: Any = None
    cmkKeyName: Any = None
    cmkKeyVersion: Any = None
    vnetName: Any = None
    subnetName: Any = None

    _refuse = refused(ACI_REJECTED)

    @field_validator("authEnabled")
    @classmethod
    def _authentication_required(cls, value: bool) -> bool:
        if not value:
            raise ValueError(
                "managed online endpoints do not allow anonymous access (v2 has no 'no auth' mode); set "
                "authEnabled: true (key authentication) and send the key as a bearer token"
            )
        return value

    @model_validator(mode="after")
    def _resources_fit_a_managed_instance(self) -> AciDeploymentConfig:
        resources = self.containerResourceRequirements
        for limit in ("cpuLimit", "memoryInGBLimit"):
            if getattr(resources, limit) is not None:
                raise ValueError(
                    f"containerResourceRequirements.{limit}: a managed deployment gets a whole VM instance, so "
                    "container limits do not apply; remove the field (cpu/memoryInGB choose the instance type)"
                )
        if resources.gpu and not self.instanceType:
            raise ValueError(
                "containerResourceRequirements.gpu: the instance-type table holds CPU sizes only; set "
                "instanceType to a GPU size (for example Standard_NC4as_T4_v3) and a CUDA baseImage"
            )
        return self


class AksDeploymentConfig(ServingLimits):
    """``computeType: AKS``: v1's production deployment; here, a Kubernetes online endpoint.

    ``computeTargetName`` (v1 ``compute_target_name``, which the v1 CLI took as ``--compute-target``) names the
    Kubernetes compute attached to the workspace. Fields in :data:`AKS_REJECTED` are refused with the reason.
    """

    computeType: Literal["AKS"]
    computeTargetName: str = Field(min_length=2, description="The attached Kubernetes compute (v2: endpoint compute).")
    containerResourceRequirements: ContainerResources
    autoScaler: AutoScaler | None = None
    numReplicas: int | None = Field(default=None, ge=1)
    gpuCores: int | None = Field(default=None, ge=0)
    authEnabled: bool | None = Field(default=None, description="Key authentication; default: on unless tokens are.")
    tokenAuthEnabled: bool = False
    appInsightsEnabled: bool = False
    scoringTimeoutMs: int = Field(default=60_000, gt=0)
    maxConcurrentRequestsPerContainer: int = Field(default=1, ge=1)
    maxQueueWaitMs: int = Field(default=500, ge=0)
    livenessProbeRequirements: LivenessProbeRequirements = Field(default_factory=LivenessProbeRequirements)
    dataCollection: DataCollection | None = None
    description: str | None = None
    tags: dict[str, str] = Field(default_factory=dict)
    properties: dict[str, str] = Field(default_factory=dict)
    instanceType: str | None = Field(
        default=None, description="Extension: a Kubernetes instance type defined on the cluster (v2 only)."
    )
    keys: Any = None
    namespace: Any = None
    blobfuseEnabled: Any = None

    _refuse = refused(AKS_REJECTED)

    @model_validator(mode="after")
    def _consistent(self) -> AksDeploymentConfig:
        if self.authEnabled and self.tokenAuthEnabled:
            raise ValueError(
                "tokenAuthEnabled: key and token authentication cannot both be enabled (as in v1); remove "
                "authEnabled (or set it to false) to use tokens"
            )
        if self.authEnabled is False and not self.tokenAuthEnabled:
            raise ValueError(
                "authEnabled: Kubernetes online endpoints need key or token authentication; set authEnabled: true "
                "or tokenAuthEnabled: true"
            )
        if self.numReplicas is not None and self.autoScaler and self.autoScaler.autoscaleEnabled:
            raise ValueError(
                "numReplicas: a fixed replica count cannot be combined with autoScaler.autoscaleEnabled: true "
                "(as in v1); remove one of them"
            )
        resources = self.containerResourceRequirements
        if resources.gpu is not None:
            raise ValueError("containerResourceRequirements.gpu: on AKS the GPU count is gpuCores; move it there")
        return self

    @property
    def auth_mode(self) -> Literal["key", "aml_token"]:
        """v2 ``auth_mode``: ``aml_token`` when ``tokenAuthEnabled``, else ``key``."""
        return "aml_token" if self.tokenAuthEnabled else "key"

    @property
    def autoscale(self) -> bool:
        """Whether the autoscaler runs: v1's rule, on unless a fixed ``numReplicas`` is given."""
        if self.autoScaler is not None and self.autoScaler.autoscaleEnabled is not None:
            return self.autoScaler.autoscaleEnabled
        return self.numReplicas is None


DeploymentConfig = Annotated[
    LocalDeploymentConfig | AciDeploymentConfig | AksDeploymentConfig,
    Field(discriminator="computeType"),
]


class _DeploymentFile(BaseModel):
    config: DeploymentConfig


def load_deployment_config(path: Path) -> LocalDeploymentConfig | AciDeploymentConfig | AksDeploymentConfig:
    """Parse a ``deploymentConfig*.yml`` file; its ``computeType`` picks the schema (any letter case, as in v1)."""
    content = read_yaml(path)
    if "computeType" not in content:
        raise ConfigError(f"{path}: field 'computeType': required (one of: {', '.join(COMPUTE_TYPES)})")
    spelled = {name.lower(): name for name in COMPUTE_TYPES}
    compute_type = content["computeType"]
    if isinstance(compute_type, str) and compute_type.lower() in spelled:
        content["computeType"] = spelled[compute_type.lower()]
    else:
        raise ConfigError(f"{path}: field 'computeType': {compute_type!r} is not one of: {', '.join(COMPUTE_TYPES)}")
    try:
        return _DeploymentFile.model_validate({"config": content}).config
    except ValidationError as error:
        raise explain(path, error, strip=1) from None
