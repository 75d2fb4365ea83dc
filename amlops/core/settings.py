"""Typed settings read from ``AMLOPS_``-prefixed environment variables.

Every setting that more than one module needs (where the registry lives, the data rules, the scoring limits)
is defined here once; what describes the model itself (its name, columns, metric and gate) is ``contract.yml``
(:mod:`amlops.core.contract`). Each class reads its own prefix, so
``AMLOPS_MODEL_NAME=my-model`` or ``AMLOPS_DATA_MIN_ROWS=200`` override a default without code changes.
This module imports nothing heavy: ``score.py`` depends on it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from amlops.core import contract, machine
from amlops.core.contract import Contract

# Telemetry off before MLflow or azure-ai-ml can be imported anywhere in the package.
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("DO_NOT_TRACK", "true")
os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")
os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")

PACKAGE_DIR = Path(__file__).resolve().parent.parent

#: The registry alias that marks the version serving production traffic.
PRODUCTION_ALIAS = "production"
#: The run configuration (v1 format) in the project root.
RUNCONFIG_FILE = "sklearn.runconfig"


def _default_root() -> Path:
    """The repository checkout when the package runs from one, else the working directory."""
    candidate = PACKAGE_DIR.parent
    if (candidate / "pyproject.toml").is_file() and (candidate / "inferenceConfig.yml").is_file():
        return candidate
    return Path.cwd()


class ProjectSettings(BaseSettings):
    """Where the project's files and local state live, and what the model is called."""

    model_config = SettingsConfigDict(env_prefix="AMLOPS_", extra="ignore")

    root: Path = Field(default_factory=_default_root, description="Repository root.")
    model_name: str = Field(default="", description="Registered model name (default: the contract's name).")
    experiment_name: str = Field(default="", description="MLflow experiment name (default: the contract's name).")
    tracking_uri: str | None = Field(
        default=None, description="MLflow tracking/registry URI; default: SQLite file in the root."
    )
    target: Literal["local", "azure"] = Field(
        default="local", description="Where commands with --target run by default: local or azure."
    )
    runconfig: Path | None = Field(
        default=None,
        description="Run configuration to train with; default: sklearn.runconfig in the root (a published "
        "pipeline's run uses the one in its code snapshot).",
    )
    contract_file: Path | None = Field(
        default=None,
        description="Contract to validate, train and judge with; default: contract.yml in the root (a published "
        "pipeline's run uses the one in its code snapshot).",
    )

    @model_validator(mode="after")
    def _names_from_the_contract(self) -> ProjectSettings:
        if not self.model_name:
            self.model_name = self.contract.name
        if not self.experiment_name:
            self.experiment_name = self.contract.experiment_name
        return self

    @property
    def contract_path(self) -> Path:
        """The contract file: ``AMLOPS_CONTRACT_FILE``, else ``contract.yml`` in the root."""
        return self.contract_file or self.root / contract.CONTRACT_FILE

    @property
    def contract(self) -> Contract:
        """The data and model contract (:attr:`contract_path`)."""
        return contract.load(self.contract_path)

    @property
    def pipeline_name(self) -> str:
        """The training pipeline's name: ``<model name>-training``."""
        return f"{self.model_name}-training"

    @property
    def in_azureml_job(self) -> bool:
        """Whether this process runs inside an Azure ML job (which sets the MLflow tracking URI itself)."""
        return bool(os.environ.get("AZUREML_RUN_ID")) and bool(os.environ.get("MLFLOW_TRACKING_URI"))

    @property
    def resolved_tracking_uri(self) -> str:
        """The MLflow tracking URI.

        ``AMLOPS_TRACKING_URI`` when set; inside an Azure ML job, the workspace's (``MLFLOW_TRACKING_URI``, set
        by Azure ML); otherwise ``.mlops/mlflow.db`` in the project root. A ``MLFLOW_TRACKING_URI`` left in a
        developer's shell is deliberately not followed, so a local run can never trigger an Azure login.
        """
        if self.tracking_uri:
            return self.tracking_uri
        if self.in_azureml_job:
            return os.environ["MLFLOW_TRACKING_URI"]
        return f"sqlite:///{self.state_dir / 'mlflow.db'}"

    @property
    def state_dir(self) -> Path:
        """Folder for the local registry database and artifacts: ``.mlops`` in the root (git-ignored).

        When the root is on a network share, as a compute instance's user files are, a folder on the machine's own
        disk instead (:func:`amlops.core.machine.local_state_dir`): SQLite's file locks are unreliable on shares.
        """
        if machine.on_network_share(self.root):
            return machine.local_state_dir(self.root)
        return self.root / ".mlops"

    @property
    def artifact_root(self) -> Path:
        """Explicit artifact location for MLflow experiments (never ``./mlruns``): beside the SQLite file."""
        uri = self.resolved_tracking_uri
        if uri.startswith("sqlite:///"):
            return Path(uri.removeprefix("sqlite:///")).parent / "artifacts"
        return self.state_dir / "artifacts"

    @property
    def events_file(self) -> Path:
        """Lifecycle events of this registry, one JSON line each (beside the registry's own files)."""
        return self.artifact_root.parent / "events.jsonl"

    @property
    def build_dir(self) -> Path:
        """Git-ignored folder for pipeline outputs, staged deployments and endpoint state."""
        return self.root / "build"

    @property
    def endpoints_dir(self) -> Path:
        """Where running local endpoints record their state and write their logs."""
        return self.build_dir / "endpoints"

    @property
    def runconfig_file(self) -> Path:
        """The run configuration: ``AMLOPS_RUNCONFIG``, else ``sklearn.runconfig`` in the root."""
        return self.runconfig or self.root / RUNCONFIG_FILE

    @property
    def data_snapshot(self) -> Path:
        """The committed CSV snapshot of the training data (the contract's ``data``)."""
        return self.root / self.contract.data


class DataSettings(BaseSettings):
    """Rules for preparing the data: split and minimum size."""

    model_config = SettingsConfigDict(env_prefix="AMLOPS_DATA_", extra="ignore")

    test_size: float = Field(default=0.2, gt=0.0, lt=1.0, description="Share of rows held out for evaluation.")
    seed: int = Field(default=42, description="Seed of the train/holdout split, so a rerun splits the same way.")
    min_rows: int = Field(default=100, ge=2, description="Fewest rows ``prep`` accepts.")


class DriftSettings(BaseSettings):
    """How far new training data may drift from the reference snapshot before ``prep`` refuses it."""

    model_config = SettingsConfigDict(env_prefix="AMLOPS_DRIFT_", extra="ignore")

    enabled: bool = Field(default=True, description="Check drift at all (off: ``prep`` only validates the data).")
    max_psi: float = Field(default=0.25, gt=0, description="Population stability index per feature (0.25 = major).")
    max_ks: float = Field(default=0.3, gt=0, le=1, description="Kolmogorov-Smirnov statistic per feature.")
    bins: int = Field(default=10, ge=2, le=100, description="Quantile bins of the reference for the PSI.")


class ScoringSettings(BaseSettings):
    """Limits enforced by ``score.py``; the deployment sets them from ``deploymentConfig.yml``."""

    model_config = SettingsConfigDict(env_prefix="AMLOPS_SCORING_", extra="ignore")

    max_batch_rows: int = Field(default=10_000, ge=1, description="Most rows one request may carry (more: HTTP 400).")
    max_request_bytes: int = Field(
        default=5 * 1024 * 1024, ge=64, description="Largest request body in bytes (larger: HTTP 413)."
    )
    out_of_range: Literal["refuse", "flag"] = Field(
        default="refuse",
        description="A value outside its column's range or categories in contract.yml: refuse (HTTP 400 naming "
        "the row and column) or flag (answer, listing it under out_of_range).",
    )
    probabilities: bool = Field(
        default=True, description="Classifiers with predict_proba also answer each class's probability."
    )
    connection_threads: int = Field(
        default=32,
        ge=2,
        le=256,
        description="Threads per server worker holding client connections: clients that stall hold at most these, "
        "the others keep answering (gunicorn gthread workers).",
    )
    client_timeout_seconds: float = Field(
        default=10.0,
        gt=0,
        le=300,
        description="A client that stops sending its request, or stops reading its answer, this long is "
        "disconnected; a connection that sends nothing reaches the server only once it does.",
    )

    def server_arguments(self) -> str:
        """The gunicorn options these settings ask for (``GUNICORN_CMD_ARGS``, read by every gunicorn)."""
        return f"--worker-class gthread --threads {self.connection_threads}"


class EfficacySettings(BaseSettings):
    """Thresholds ``models check`` applies to the production model on newer labelled data."""

    model_config = SettingsConfigDict(env_prefix="AMLOPS_EFFICACY_", extra="ignore")

    max_relative_degradation: float = Field(
        default=0.15,
        ge=0,
        description="How much worse the primary metric may be than its metric.<name> tag recorded at "
        "registration, relative to it (0.15 = 15% worse); the gate's limits in contract.yml apply too.",
    )
    min_rows: int = Field(default=30, ge=2, description="Fewest labelled rows a check may use.")
    retrain: bool = Field(default=False, description="Start the training pipeline when a check is degraded.")


class EventSettings(BaseSettings):
    """How lifecycle events (registered, promoted, retired, degraded...) reach whatever starts the next step."""

    model_config = SettingsConfigDict(env_prefix="AMLOPS_EVENTS_", extra="ignore")

    command: str | None = Field(
        default=None,
        description="Command run once per event with the event as JSON on stdin (split like a shell would, "
        "not run by one: use `sh -c '...'` for pipes).",
    )
    timeout: float = Field(default=60.0, gt=0, description="Seconds the command may take.")
