"""The document's configuration files, parsed into typed objects.

``sklearn.runconfig``, ``inferenceConfig.yml`` and the ``deploymentConfig*.yml`` files keep their Azure
ML v1 names and field spellings (what users know from ``az ml model deploy``); this module reads them,
rejects unknown or mistyped fields with an error naming the file and the field, and hands typed objects
to the rest of the package.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError


class ConfigError(ValueError):
    """A configuration file is missing, unreadable or has a wrong field."""


class _V1Model(BaseModel):
    """Base for v1-format files: camelCase fields, unknown fields refused."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)


# --- sklearn.runconfig ------------------------------------------------------------------------------


class PythonSection(_V1Model):
    """``environment.python``: the conda file the environment is built from."""

    userManagedDependencies: bool = False
    interpreterPath: str = "python"
    condaDependenciesFile: str


class DockerSection(_V1Model):
    """``environment.docker``: the base image."""

    enabled: bool = True
    baseImage: str


class EnvironmentSection(_V1Model):
    """``environment``: the training environment."""

    name: str
    python: PythonSection
    docker: DockerSection


class RunConfig(_V1Model):
    """``sklearn.runconfig``: how ``train.py`` runs (script, arguments, compute, environment, time limit)."""

    script: str
    arguments: list[str | int | float] = Field(default_factory=list)
    target: str = Field(description="Compute cluster name used with --target azure.")
    framework: Literal["Python"] = "Python"
    communicator: Literal["None"] = "None"
    nodeCount: int = Field(default=1, ge=1)
    maxRunDurationSeconds: int = Field(default=3600, gt=0)
    environment: EnvironmentSection

    @property
    def argv(self) -> list[str]:
        """The script arguments as command-line strings."""
        return [str(arg) for arg in self.arguments]


# --- inferenceConfig.yml ----------------------------------------------------------------------------


class InferenceConfig(_V1Model):
    """``inferenceConfig.yml``: the entry script and the environment it is served in."""

    entryScript: str
    runtime: Literal["python"] = "python"
    condaFile: str
    sourceDirectory: str = "."
    description: str | None = None


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
    """``containerResourceRequirements``: CPU cores and memory per container."""

    cpu: float = Field(gt=0)
    memoryInGB: float = Field(gt=0)


class AciDeploymentConfig(ServingLimits):
    """``computeType: ACI``: v1's test deployment; here, the pre-production managed online endpoint."""

    computeType: Literal["ACI"]
    containerResourceRequirements: ContainerResources
    authEnabled: bool = True
    appInsightsEnabled: bool = False
    sslEnabled: bool = False
    location: str | None = None
    description: str | None = None
    tags: dict[str, str] = Field(default_factory=dict)


DeploymentConfig = Annotated[
    LocalDeploymentConfig | AciDeploymentConfig,
    Field(discriminator="computeType"),
]


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


def _explain(path: Path, error: ValidationError, strip: int = 0) -> ConfigError:
    lines = []
    for item in error.errors():
        location = [str(part) for part in item["loc"][strip:]]
        # Discriminated unions add the variant's tag to the path; it is not a field the user wrote.
        location = [part for part in location if part not in ("local", "ACI")]
        field = ".".join(location) or "<file>"
        lines.append(f"{path}: field '{field}': {item['msg']}")
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


def load_deployment_config(path: Path) -> LocalDeploymentConfig | AciDeploymentConfig:
    """Parse a ``deploymentConfig*.yml`` file; its ``computeType`` picks the schema."""
    content = read_yaml(path)
    if "computeType" not in content:
        raise ConfigError(f"{path}: field 'computeType': required (one of: local, ACI)")
    try:
        return _DeploymentFile.model_validate({"config": content}).config
    except ValidationError as error:
        raise _explain(path, error, strip=1) from None
