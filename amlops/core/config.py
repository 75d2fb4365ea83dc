"""The document's configuration files, parsed into typed objects.

``sklearn.runconfig``, ``inferenceConfig.yml`` and the ``deploymentConfig*.yml`` files keep their Azure
ML v1 names and field spellings (what users know from ``az ml model deploy``); this module reads them,
rejects unknown or mistyped fields with an error naming the file and the field, and hands typed objects
to the rest of the package.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator

from amlops.core.errors import BadInputError


class ConfigError(BadInputError, ValueError):
    """A configuration file is missing, unreadable or has a wrong field."""


def refused(table: dict[str, str]) -> Any:
    """A validator refusing each v1 field named in ``table`` with the reason and replacement ``table`` gives."""

    def refuse(cls: type, value: Any, info: ValidationInfo) -> Any:
        raise ValueError(table[info.field_name])

    return field_validator(*table, mode="before")(classmethod(refuse))


#: Why a v1 ``baseImageRegistry`` (inference and training environments alike) is refused.
_BASE_IMAGE_REGISTRY_REASON = (
    "v2 pulls base images with the workspace's identity; push the image to the workspace's container "
    "registry (or grant it pull access) and name it in baseImage"
)


class V1Model(BaseModel):
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


class PythonSection(V1Model):
    """``environment.python``: the conda file the environment is built from."""

    userManagedDependencies: bool = False
    interpreterPath: str = "python"
    condaDependenciesFile: str
    baseCondaEnvironment: Any = None

    _refuse = refused(PYTHON_REJECTED)


class DockerSection(V1Model):
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

    _refuse = refused(DOCKER_REJECTED)


class EnvironmentSection(V1Model):
    """``environment``: the training environment (``name`` defaults to ``<model name>-train``)."""

    name: str | None = None
    python: PythonSection
    docker: DockerSection
    version: Any = None
    environmentVariables: Any = None
    spark: Any = None
    databricks: Any = None
    r: Any = None
    inferencingStackVersion: Any = None

    _refuse = refused(ENVIRONMENT_REJECTED)


class RunConfig(V1Model):
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

    _refuse = refused(RUNCONFIG_REJECTED)

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


class InferenceConfig(V1Model):
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

    _refuse = refused(INFERENCE_REJECTED)


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


#: ``computeType`` values, as v1 spelled them (v1 accepted any letter case).
COMPUTE_TYPES = ("local", "ACI", "AKS")


def explain(path: Path, error: ValidationError, strip: int = 0) -> ConfigError:
    """A :class:`ConfigError` naming the file and each invalid field of a validation error."""
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


#: Options the pipeline sets on ``train.py`` itself; ``sklearn.runconfig`` may not.
RESERVED_ARGUMENTS = ("--data", "--out", "--pipeline-run-id")


def argument_pairs(runconfig: RunConfig, source: str | Path) -> list[tuple[str, str, Any]]:
    """``arguments`` as ``(name, --flag, value)``: ``--max-iter 100`` is ``("max_iter", "--max-iter", 100)``.

    Raises:
        ConfigError: for an argument the pipeline sets itself, a flag without a value, or a stray value.
    """
    arguments = list(runconfig.arguments)
    found = []
    for index in range(0, len(arguments), 2):
        flag = arguments[index]
        if not (isinstance(flag, str) and flag.startswith("--") and len(flag) > 2):
            raise ConfigError(f"{source}: field 'arguments': {flag!r} is not a --flag; write arguments as flag, value")
        if flag in RESERVED_ARGUMENTS:
            raise ConfigError(f"{source}: field 'arguments': {flag} is set by the pipeline itself; remove it")
        value = arguments[index + 1] if index + 1 < len(arguments) else None
        if value is None or (isinstance(value, str) and value.startswith("--")):
            raise ConfigError(f"{source}: field 'arguments': {flag} has no value")
        name = flag[2:].replace("-", "_")
        if not re.fullmatch(r"[A-Za-z_]\w*", name):
            raise ConfigError(f"{source}: field 'arguments': {flag} cannot be a component input name")
        found.append((name, flag, value))
    return found


def load_runconfig(path: Path) -> RunConfig:
    """Parse ``sklearn.runconfig``."""
    try:
        return RunConfig.model_validate(read_yaml(path))
    except ValidationError as error:
        raise explain(path, error) from None


def load_inference_config(path: Path) -> InferenceConfig:
    """Parse ``inferenceConfig.yml``."""
    try:
        return InferenceConfig.model_validate(read_yaml(path))
    except ValidationError as error:
        raise explain(path, error) from None
