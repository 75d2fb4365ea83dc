"""The lifecycle as the notebooks drive it: one call per step, for either target.

``target="local"`` (the default) uses the local MLflow registry (:func:`registry` says where) and the local
inference server; ``target="azure"`` uses the workspace named by ``config.json`` (:mod:`amlops.app.targets`
does the work for both). Notebooks call only these functions, so they stay thin and the same cells work in both places.
"""

from __future__ import annotations

import functools
import os
from typing import Any

import pandas as pd

from amlops.app.targets import AzureTarget, Endpoint, LocalTarget, Target, check, production_version
from amlops.azure import connection, operations
from amlops.core import machine
from amlops.core.settings import ProjectSettings
from amlops.core.tags import PARAM_TAG_PREFIX
from amlops.registry.base import Version
from amlops.serving.smoke import SmokeResult

__all__ = ["Endpoint"]


@functools.cache
def _azure() -> Any:
    """One workspace connection per notebook kernel."""
    return connection.connect()


def _target(target: str) -> Target:
    check(target)
    return AzureTarget(_azure()) if target == "azure" else LocalTarget()


#: Where a notebook's runs and registered models go when it trains in its own kernel (``target="local"``).
REGISTRIES = ("local", "workspace")


def check_target(target: str, registry: str = "local") -> str:
    """Validate ``target``; for Azure, connect now so a missing workspace or login is reported first.

    Args:
        target: ``local`` (train in this kernel) or ``azure`` (train on the workspace's cluster).
        registry: With ``target="local"``, where runs and registered models go: ``local`` (the project's MLflow
            store) or ``workspace`` (the Azure ML workspace's MLflow: studio's Jobs and Models pages show them),
            for every later call in this kernel.
    """
    if registry not in REGISTRIES:
        raise ValueError(f"registry must be one of {', '.join(REGISTRIES)}, not {registry!r}")
    _target(target)
    if registry == "workspace":
        os.environ["AMLOPS_TRACKING_URI"] = operations.workspace_tracking_uri(_azure())
    return target


def registry(target: str = "local") -> str:
    """Where runs and registered versions go: the local MLflow store, or the Azure ML workspace.

    The local store is ``.mlops/`` in the project, or a folder on the machine's own disk when the project is on a
    network share, as on a compute instance (:attr:`ProjectSettings.state_dir`).
    """
    check(target)
    if target == "azure":
        return f"the Azure ML workspace {connection.find_workspace()}"
    uri = ProjectSettings().resolved_tracking_uri
    if uri.startswith("azureml:"):
        return "the Azure ML workspace's MLflow (studio's Jobs and Models pages); training runs in this kernel"
    instance = machine.compute_instance()
    offer = f'; on compute instance {instance}, registry = "workspace" sends runs and models to the workspace'
    return f"the local MLflow store {uri}" + (offer if instance else "")


def run_pipeline(target: str = "local", **parameters: Any) -> dict:
    """Run the training pipeline (prep → train → evaluate → register) and return what it decided.

    Args:
        target: ``local`` or ``azure``.
        **parameters: ``data`` (CSV path), ``promote``, and hyperparameters by name (``contract.yml``'s ``params``).

    Returns:
        ``run_id``, ``outcome``, ``reasons``, ``candidate`` and ``production`` metrics, ``registered_version``,
        ``production_version`` and the step ``folder`` (local) or job name (azure).
    """
    return _target(target).run_pipeline(**parameters)


def publish_pipeline(target: str = "local", name: str | None = None, description: str = "", **parameters: Any) -> dict:
    """Publish the pipeline: a versioned local definition, or an Azure ML pipeline component.

    Args:
        target: ``local`` or ``azure``.
        name: The pipeline's name; on Azure ML only the project's own (the component is named after the model).
        description: Shown in listings (locally) and on the component (Azure ML).
        **parameters: Defaults for ``data`` and the hyperparameters (``contract.yml``'s ``params``).
    """
    return _target(target).publish_pipeline(name=name, description=description, **parameters)


def run_published_pipeline(target: str = "local", **parameters: Any) -> dict:
    """Re-run the latest published pipeline with some parameters changed."""
    return _target(target).run_published_pipeline(**parameters)


def model_versions(target: str = "local") -> pd.DataFrame:
    """Registered versions with metrics, lineage and which one is in production."""
    rows = [
        {
            "version": v.version,
            "production": v.in_production,
            **v.metrics,
            **{k.removeprefix(PARAM_TAG_PREFIX): t for k, t in v.tags.items() if k.startswith(PARAM_TAG_PREFIX)},
            "data_sha256": v.tags.get("data_sha256", "")[:12],
            "git_commit": v.tags.get("git_commit", "")[:12],
            "decision": v.tags.get("decision"),
        }
        for v in _target(target).registry().versions()
    ]
    return pd.DataFrame(rows).set_index("version") if rows else pd.DataFrame()


def production_model(target: str = "local") -> Version:
    """The registry version serving production."""
    return production_version(_target(target))


def deploy(target: str = "local") -> tuple[Endpoint, SmokeResult]:
    """Deploy the production model and smoke-test it.

    Locally the endpoint keeps running in the background (``workflow.teardown`` or
    ``python -m amlops undeploy`` stops it); on Azure it is a new deployment on the pre-production managed
    online endpoint, which receives traffic only after its smoke test passes.

    Returns:
        The endpoint and the smoke test's result.
    """
    return _target(target).deploy()


def endpoint(target: str = "local") -> Endpoint:
    """The endpoint deployed by :func:`deploy` (URL and key)."""
    return _target(target).endpoint()


def teardown(target: str = "local") -> None:
    """Stop the local endpoint (Azure endpoints are left for the release pipeline to manage)."""
    _target(target).teardown()
