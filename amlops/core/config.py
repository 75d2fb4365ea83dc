"""The document's configuration files, parsed into typed objects.

``sklearn.runconfig``, ``inferenceConfig.yml`` and the ``deploymentConfig*.yml`` files keep their Azure
ML v1 names and field spellings (what users know from ``az ml model deploy``); this module reads them,
rejects unknown or mistyped fields with an error naming the file and the field, and hands typed objects
to the rest of the package.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator, model_validator


class ConfigError(ValueError):
    """A configuration file is missing, unreadable or has a wrong field."""


def _refused(table: dict[str, str]) -> Any:
    """A validator refusing each v1 field named in ``table`` with the reason and replacement ``table`` gives."""

    def refuse(cls: type, value: Any, info: ValidationInfo) -> Any:
        raise ValueError(table[info.field_name])

    return field_validator(*table, mode="before")(classmethod(refuse))


#: Why a v1 ``baseImageRegistry`` (inference and training environments alike) is refused.
_BASE_IMAGE_REGISTRY_REASON = (
    "v2 pulls base images with the workspace's identity; push the image to the workspace's container "
    "registry (or grant it pull access) and name it in baseImage"
)


class _V1Model(BaseModel):
    """Base for v1-format files: camelCase fields, unknown fields refused."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)


# --- sklearn.runconfig ------------------------------------------------------------------------------


#: v1 fields of ``sklearn.runconfig`` this project does not translate, and why (each section has its table).
RUNCONFIG_REJECTED: dict[str, str] = {
    "command": "the train component's command is built from script and arguments; remove command",
    "priority": "v2 jobs on a compute cluster have no priority; remove the field",
    "credentialPassthrough": (
        "v2 jobs choose their identity with `identity` (user or managed); these jobs run with the compute's "
        "managed identity: remove the field"
    ),
    "identity": "these jobs run with the compute cluster's managed identity; remove the field",
    "history": "v2 always snapshots the code folder and keeps the logs and outputs; remove history",
    "environmentVariables": (
        "v2 takes variables per job (environment_variables), which this project does not write; set them in the "
        "training code or the cluster instead"
    ),
    "spark": "Spark runs are not command jobs; this scikit-learn project trains on a compute cluster",
    "hdi": "HDInsight runs are not command jobs; this scikit-learn project trains on a compute cluster",
    "tensorflow": "distributed training (v2: `distribution`) does not apply to this single-process scikit-learn script",
    "pyTorch": "distributed training (v2: `distribution`) does not apply to this single-process scikit-learn script",
    "mpi": "distributed training (v2: `distribution`) does not apply to this single-process scikit-learn script",
    "paralleltask": "parallel runs are v2 parallel jobs, not command jobs; this project trains one model per job",
    "dataReferences": "v2 passes data as job inputs: the pipeline gives train.py its data folder itself (--data)",
    "data": "v2 passes data as job inputs: the pipeline gives train.py its data folder itself (--data)",
    "outputData": "v2 jobs declare outputs: the pipeline gives train.py its output folder itself (--out)",
    "datacaches": "v2 has no data caches; inputs are mounted or downloaded by the job",
    "sourceDirectoryDataStore": "v2 uploads the code folder to the workspace's default datastore; remove the field",
    "amlcompute": (
        "v2 does not create a cluster per run: create the cluster named in target once (`az ml compute create`)"
    ),
    "kubernetescompute": "name an attached Kubernetes compute in target instead",
}
ENVIRONMENT_REJECTED: dict[str, str] = {
    "version": "v2 gives the environment a new version whenever its conda file or image changes; remove version",
    "environmentVariables": RUNCONFIG_REJECTED["environmentVariables"],
    "spark": RUNCONFIG_REJECTED["spark"],
    "databricks": "Databricks runs are not command jobs; this scikit-learn project trains on a compute cluster",
    "r": "R environments are not built by this project; the training environment is myenv.yml (conda)",
    "inferencingStackVersion": "a v1 image option; the scoring environment is environments/score.yml",
}
PYTHON_REJECTED: dict[str, str] = {
    "baseCondaEnvironment": "v2 builds the environment from condaDependenciesFile alone; remove the field",
}
DOCKER_REJECTED: dict[str, str] = {
    "baseDockerfile": "v2 builds this environment from the conda file on baseImage; name a prebuilt image there",
    "baseImageRegistry": _BASE_IMAGE_REGISTRY_REASON,
    "platform": "v2 environments run on Linux; remove platform",
    "gpuSupport": "choose a CUDA base image in baseImage and a GPU cluster in target instead",
    "shmSize": "v2 sets shared memory per job (resources.shm_size), which this project leaves at the default",
    "arguments": "v2 sets Docker arguments per job (resources.docker_args), which this project does not use",
    "sharedVolumes": "v2 jobs mount their inputs and outputs; there are no shared volumes to switch",
}


class PythonSection(_V1Model):
    """``environment.python``: the conda file the environment is built from."""

    userManagedDependencies: bool = False
    interpreterPath: str = "python"
    condaDependenciesFile: str
    baseCondaEnvironment: Any = None

    _refuse = _refused(PYTHON_REJECTED)


class DockerSection(_V1Model):
    """``environment.docker``: the base image."""

    enabled: bool = True
    baseImage: str
    baseDockerfile: Any = None
    baseImageRegistry: Any = None
    platform: Any = None
    gpuSupport: Any = None
    shmSize: Any = None
    arguments: Any = None
    sharedVolumes: Any = None

    _refuse = _refused(DOCKER_REJECTED)


class EnvironmentSection(_V1Model):
    """``environment``: the training environment."""

    name: str
    python: PythonSection
    docker: DockerSection
    version: Any = None
    environmentVariables: Any = None
    spark: Any = None
    databricks: Any = None
    r: Any = None
    inferencingStackVersion: Any = None

    _refuse = _refused(ENVIRONMENT_REJECTED)


class RunConfig(_V1Model):
    """``sklearn.runconfig``: how ``train.py`` runs (script, arguments, compute, environment, time limit).

    v1 fields with no counterpart in this project's v2 jobs are refused with the reason (:data:`RUNCONFIG_REJECTED`
    and the tables of each section).
    """

    script: str
    arguments: list[str | int | float] = Field(default_factory=list)
    target: str = Field(description="Compute cluster name used with --target azure.")
    framework: Literal["Python"] = "Python"
    communicator: Literal["None"] = "None"
    nodeCount: int = Field(default=1, ge=1)
    maxRunDurationSeconds: int = Field(default=3600, gt=0)
    environment: EnvironmentSection
    command: Any = None
    priority: Any = None
    credentialPassthrough: Any = None
    identity: Any = None
    history: Any = None
    environmentVariables: Any = None
    spark: Any = None
    hdi: Any = None
    tensorflow: Any = None
    pyTorch: Any = None
    mpi: Any = None
    paralleltask: Any = None
    dataReferences: Any = None
    data: Any = None
    outputData: Any = None
    datacaches: Any = None
    sourceDirectoryDataStore: Any = None
    amlcompute: Any = None
    kubernetescompute: Any = None

    _refuse = _refused(RUNCONFIG_REJECTED)

    @property
    def argv(self) -> list[str]:
        """The script arguments as command-line strings."""
        return [str(arg) for arg in self.arguments]


# --- inferenceConfig.yml ----------------------------------------------------------------------------


#: v1 fields of ``inferenceConfig.yml`` that cannot be translated, and what to do instead.
INFERENCE_REJECTED: dict[str, str] = {
    "extraDockerfileSteps": (
        "v2 environments are built from a conda file on a base image, not from extra Dockerfile steps; "
        "put the packages in condaFile, or build your own image and name it in baseImage"
    ),
    "enableGpu": "choose a CUDA base image in baseImage and a GPU instanceType in the deployment config instead",
    "cudaVersion": "choose a CUDA base image in baseImage (v2 has no CUDA version switch)",
    "baseImageRegistry": _BASE_IMAGE_REGISTRY_REASON,
    "schemaFile": "score.py serves its own /swagger.json (amlops.scoring); remove the field",
    "environment": (
        "this project builds the scoring environment from condaFile (+ baseImage); remove the inline environment block"
    ),
}


class InferenceConfig(_V1Model):
    """``inferenceConfig.yml``: the entry script and the environment it is served in.

    v1's image-building fields have no counterpart in a v2 environment built from a conda file and are refused
    with what to use instead (see :data:`INFERENCE_REJECTED`).
    """

    entryScript: str
    runtime: Literal["python"] = "python"
    condaFile: str
    sourceDirectory: str = "."
    description: str | None = None
    baseImage: str | None = Field(
        default=None, description="Image the scoring environment is built on (v2: Environment.image)."
    )
    extraDockerfileSteps: Any = None
    enableGpu: Any = None
    cudaVersion: Any = None
    baseImageRegistry: Any = None
    schemaFile: Any = None
    environment: Any = None

    _refuse = _refused(INFERENCE_REJECTED)


# --- deploymentConfig*.yml --------------------------------------------------------------------------


class ServingLimits(_V1Model):
    """Request limits ``score.py`` enforces (not in v1; optional in every deployment config)."""

    maxBatchRows: int | None = Field(default=None, ge=1)
    maxRequestBytes: int | None = Field(default=None, ge=64)


class LocalDeploymentConfig(ServingLimits):
    """``computeType: local``: the Azure inference server run by gunicorn on this machine."""

    computeType: Literal["local"]
    host: str = "127.0.0.1"
    port: int = Field(default=0, ge=0, le=65535, description="0 picks a free port.")
    workers: int = Field(default=1, ge=1, le=64)
    scoringTimeoutMs: int = Field(default=60_000, gt=0)
    startupTimeoutSeconds: float = Field(default=60.0, gt=0)


class ContainerResources(_V1Model):
    """``containerResourceRequirements``: CPU cores and memory per container (and optional limits, GPUs)."""

    cpu: float = Field(gt=0)
    memoryInGB: float = Field(gt=0)
    cpuLimit: float | None = Field(default=None, gt=0)
    memoryInGBLimit: float | None = Field(default=None, gt=0)
    gpu: int | None = Field(default=None, ge=0)


class DataCollection(_V1Model):
    """``dataCollection``: v1 model data collection (v2: the deployment's data collector)."""

    storageEnabled: bool = False


class AutoScaler(_V1Model):
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


class LivenessProbeRequirements(_V1Model):
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

    _refuse = _refused(ACI_REJECTED)

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

    _refuse = _refused(AKS_REJECTED)

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

#: ``computeType`` values, as v1 spelled them (v1 accepted any letter case).
COMPUTE_TYPES = ("local", "ACI", "AKS")


class _DeploymentFile(BaseModel):
    config: DeploymentConfig


# --- loading ----------------------------------------------------------------------------------------


def read_yaml(path: Path) -> dict[str, Any]:
    """Read a YAML mapping, with errors that name the file."""
    path = Path(path)
    try:
        content = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"{path}: file not found") from None
    except yaml.YAMLError as error:
        raise ConfigError(f"{path}: not valid YAML: {error}") from None
    if not isinstance(content, dict):
        raise ConfigError(f"{path}: expected a mapping of fields at the top level")
    return content


_NAMED_FIELD = re.compile(r"^(?P<field>[A-Za-z][\w.]*): (?P<message>.*)$", re.DOTALL)


def _explain(path: Path, error: ValidationError, strip: int = 0) -> ConfigError:
    lines = []
    for item in error.errors():
        location = [str(part) for part in item["loc"][strip:]]
        # Discriminated unions add the variant's tag to the path; it is not a field the user wrote.
        location = [part for part in location if part not in COMPUTE_TYPES]
        message = str(item["msg"]).removeprefix("Value error, ")
        named = _NAMED_FIELD.match(message)
        if named:  # a check across fields names the field it is about at the start of its message
            location = [*location, named["field"]]
            message = named["message"]
        field = ".".join(location) or "<file>"
        lines.append(f"{path}: field '{field}': {message}")
    return ConfigError("\n".join(lines))


def load_runconfig(path: Path) -> RunConfig:
    """Parse ``sklearn.runconfig``."""
    try:
        return RunConfig.model_validate(read_yaml(path))
    except ValidationError as error:
        raise _explain(path, error) from None


def load_inference_config(path: Path) -> InferenceConfig:
    """Parse ``inferenceConfig.yml``."""
    try:
        return InferenceConfig.model_validate(read_yaml(path))
    except ValidationError as error:
        raise _explain(path, error) from None


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
        raise _explain(path, error, strip=1) from None
