"""Stage a deployment folder the way Azure ML lays it out inside its inference containers.

::

    <dest>/app/                                   AML_APP_ROOT: the entry script, the package, swagger
    <dest>/azureml-models/<name>/<version>/model/ AZUREML_MODEL_DIR points at <version>/

The same folder is what the local server runs and what an Azure deployment uploads as its code.
"""

from __future__ import annotations

import ast
import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import yaml

from amlops.core.config import ConfigError, InferenceConfig
from amlops.core.settings import PACKAGE_DIR, ScoringSettings
from amlops.scoring.model import find_mlmodel_dir, read_signature_features
from amlops.scoring.openapi import openapi_spec, swagger2_spec
from amlops.scoring.rules import Rules

APP_DIR = "app"
MODELS_DIR = "azureml-models"


@dataclass(frozen=True)
class StagedDeployment:
    """A staged deployment folder and the environment the inference server needs to run it."""

    root: Path
    entry_script: str
    model_name: str
    model_version: str
    limits: ScoringSettings

    @property
    def app_dir(self) -> Path:
        """``AML_APP_ROOT``: the code folder."""
        return self.root / APP_DIR

    @property
    def model_dir(self) -> Path:
        """``AZUREML_MODEL_DIR``: ``azureml-models/<name>/<version>``."""
        return self.root / MODELS_DIR / self.model_name / self.model_version

    def environment(self) -> dict[str, str]:
        """Environment variables for the inference server process."""
        return {
            "AZUREML_MODEL_DIR": str(self.model_dir),
            "AZUREML_ENTRY_SCRIPT": self.entry_script,
            "AML_APP_ROOT": str(self.app_dir),
            "AMLOPS_SCORING_MAX_BATCH_ROWS": str(self.limits.max_batch_rows),
            "AMLOPS_SCORING_MAX_REQUEST_BYTES": str(self.limits.max_request_bytes),
            "AMLOPS_SCORING_CLIENT_TIMEOUT_SECONDS": str(self.limits.client_timeout_seconds),
            # The same in Azure ML's containers: azmlinfsrv starts gunicorn, which reads this variable too.
            "GUNICORN_CMD_ARGS": self.limits.server_arguments(),
            "SERVICE_NAME": self.model_name,
            "SERVICE_VERSION": self.model_version,
        }


def scoring_code(entry: Path) -> list[Path]:
    """The package's files an entry script imports, transitively, with each package's ``__init__.py`` on the way.

    For ``score.py`` that is the scoring layer and the few core modules it uses.

    Only this code is shipped to an endpoint; the rest of the package (the lifecycle, the Azure adapter, the CLI)
    stays out of the deployment.
    """
    root = PACKAGE_DIR.parent
    needed: set[Path] = set()
    pending = [Path(entry)]
    while pending:
        tree = ast.parse(pending.pop().read_text())
        for node in ast.walk(tree):
            names = [alias.name for alias in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom) and node.module:  # `from a.b import c`: c may be a module a.b.c
                names += [node.module, *(f"{node.module}.{alias.name}" for alias in node.names)]
            for name in names:
                if name.split(".")[0] != PACKAGE_DIR.name:
                    continue
                parts = name.split(".")
                for depth in range(1, len(parts) + 1):
                    package = root.joinpath(*parts[:depth])
                    candidates = [package / "__init__.py", package.with_suffix(".py")]
                    for found in (c for c in candidates if c.is_file() and c not in needed):
                        needed.add(found)
                        pending.append(found)
    return sorted(needed)


def stage(
    model_folder: Path,
    model_name: str,
    model_version: str,
    inference: InferenceConfig,
    project_root: Path,
    dest: Path,
    limits: ScoringSettings | None = None,
) -> StagedDeployment:
    """Copy a model, the entry script and the package into a fresh deployment folder.

    Args:
        model_folder: An MLflow model folder (as downloaded from the registry).
        model_name: Registered name; becomes part of ``AZUREML_MODEL_DIR``.
        model_version: Registered version; likewise.
        inference: The parsed ``inferenceConfig.yml``.
        project_root: Where ``inference.sourceDirectory`` is resolved from.
        dest: The folder to (re)create.
        limits: Request limits written into the swagger and the server environment.
    """
    limits = limits or ScoringSettings()
    source = (Path(project_root) / inference.sourceDirectory).resolve()
    entry = source / inference.entryScript
    if not entry.is_file():
        raise ConfigError(f"inferenceConfig.yml: field 'entryScript': {entry} does not exist")
    dest = Path(dest)
    if dest.exists():
        shutil.rmtree(dest)
    staged = StagedDeployment(dest, inference.entryScript, model_name, str(model_version), limits)

    mlmodel_dir = find_mlmodel_dir(model_folder)
    shutil.copytree(mlmodel_dir, staged.model_dir / "model")
    staged.app_dir.mkdir(parents=True)
    shutil.copy2(entry, staged.app_dir / inference.entryScript)
    for module in scoring_code(entry):
        target = staged.app_dir / module.relative_to(PACKAGE_DIR.parent)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(module, target)

    # From the files alone (the model itself is loaded by the endpoint's init(), which reports a broken one).
    features = read_signature_features(yaml.safe_load((mlmodel_dir / "MLmodel").read_text()), mlmodel_dir)
    rules = Rules.read(mlmodel_dir)
    described = (features, model_name, str(model_version), limits, rules.classes if rules else None, rules)
    (staged.app_dir / "swagger.json").write_text(json.dumps(swagger2_spec(*described), indent=2))
    (staged.app_dir / "swagger3.json").write_text(json.dumps(openapi_spec(*described), indent=2))
    return staged
