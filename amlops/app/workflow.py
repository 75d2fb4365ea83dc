"""The lifecycle as the notebooks drive it: one call per step, for either target.

``target="local"`` (the default) uses the MLflow registry in ``.mlops/`` and the local inference server;
``target="azure"`` uses the workspace named by ``config.json`` through :mod:`amlops.azure`. Notebooks call
only these functions, so they stay thin and the same cells work in both places.
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass

import pandas as pd

from amlops.azure import build_steps, connection, operations, rollout
from amlops.azure.registry import AzureRegistry
from amlops.azure.translate import Project
from amlops.core.settings import DEFAULT_PIPELINE_NAME, ProjectSettings
from amlops.lifecycle import local_deploy, pipeline
from amlops.registry.mlflow import Registry
from amlops.serving.local import read_state

log = logging.getLogger(__name__)

TARGETS = ("local", "azure")
#: The Azure stage notebooks deploy to (production releases go through the release pipeline and its approval).
PREPRODUCTION = "preprod"


@dataclass(frozen=True)
class Endpoint:
    """How an application reaches a deployed model."""

    scoring_uri: str
    key: str | None
    model_name: str
    model_version: str
    swagger_uri: str

    def __repr__(self) -> str:  # never show the key
        return f"Endpoint({self.scoring_uri!r}, model={self.model_name} v{self.model_version})"


def check_target(target: str) -> str:
    """Validate ``target``; for Azure, connect now so a missing workspace or login is reported first."""
    if target not in TARGETS:
        raise ValueError(f"target must be one of {TARGETS}, got {target!r}")
    if target == "azure":
        _azure()
    return target


@functools.cache
def _azure():
    """One workspace connection per notebook kernel."""
    return connection.connect()


def _promote_on_azure(outcome: dict) -> dict:
    """Move the workspace's production marker to a version the pipeline registered (as a local run does).

    Through the workspace registry's own ``promote``: a retired version is refused and ``model.promoted`` is sent.
    """
    if outcome["registered_version"]:
        AzureRegistry(_azure()).promote(outcome["registered_version"])
        outcome["production_version"] = outcome["registered_version"]
    return outcome


def _outcome(outcome: dict) -> dict:
    """An Azure pipeline job's outcome in the same shape as a local run's."""
    return {"run_id": outcome["pipeline_run_id"], "folder": outcome["pipeline_run_id"]} | {
        key: outcome.get(key)
        for key in ("outcome", "reasons", "candidate", "production", "registered_version", "production_version")
    }


def run_pipeline(target: str = "local", **parameters) -> dict:
    """Run the training pipeline (prep → train → evaluate → register) and return what it decided.

    Args:
        target: ``local`` or ``azure``.
        **parameters: ``data`` (CSV path), ``alpha``, ``promote``.

    Returns:
        ``run_id``, ``outcome``, ``reasons``, ``candidate`` and ``production`` metrics, ``registered_version``,
        ``production_version`` and the step ``folder`` (local) or job name (azure).
    """
    check_target(target)
    if target == "azure":
        alpha = parameters.get("alpha")
        outcome = _outcome(
            build_steps.train(
                client=_azure(), data=parameters.get("data"), inputs=None if alpha is None else {"alpha": alpha}
            )
        )
        return _promote_on_azure(outcome) if parameters.get("promote", True) else outcome

    result = pipeline.run(
        parameters.get("data"), promote=parameters.get("promote", True), alpha=parameters.get("alpha")
    )
    return _summary(result)


def _summary(result) -> dict:
    return {
        "run_id": result.run_id,
        "outcome": result.registration["outcome"],  # the register step's verdict: it re-checks under a lock
        "reasons": result.registration["reasons"],
        "candidate": result.decision.candidate,
        "production": result.decision.production,
        "registered_version": result.registration["registered_version"],
        "production_version": result.registration["production_version"],
        "folder": str(result.folder),
    }


def publish_pipeline(target: str = "local", name: str | None = None, description: str = "", **parameters) -> dict:
    """Publish the pipeline: a versioned local definition, or an Azure ML pipeline component.

    Args:
        target: ``local`` or ``azure``.
        name: The pipeline's name; on Azure ML only the project's own (the component is named after the model).
        description: Shown in listings (locally) and on the component (Azure ML).
        **parameters: Defaults for ``data`` and the hyperparameters (``alpha``).
    """
    check_target(target)
    from dataclasses import asdict

    if target == "azure":
        data = parameters.pop("data", None)
        return asdict(
            build_steps.publish(
                client=_azure(),
                data=data,
                name=name,
                description=description,
                hyperparameters=parameters,
            )
        )

    return asdict(
        pipeline.publish(name or DEFAULT_PIPELINE_NAME, parameters=parameters or None, description=description)
    )


def run_published_pipeline(target: str = "local", **parameters) -> dict:
    """Re-run the latest published pipeline with some parameters changed."""
    check_target(target)
    if target == "azure":
        data, promote = parameters.pop("data", None), parameters.pop("promote", True)
        name, version = parameters.pop("name", None), parameters.pop("version", None)
        project = Project.load()
        if name and name != project.pipeline_name:
            raise LookupError(f"the published pipeline component is {project.pipeline_name!r}, not {name!r}")
        outcome = _outcome(
            build_steps.run_published(
                client=_azure(),
                project=project,
                data=data,
                version=None if version is None else str(version),
                inputs=parameters,
            )
        )
        return _promote_on_azure(outcome) if promote else outcome

    return _summary(pipeline.run_published(**parameters))


def model_versions(target: str = "local") -> pd.DataFrame:
    """Registered versions with metrics, lineage and which one is in production."""
    check_target(target)
    if target == "azure":
        versions = operations.model_versions(_azure(), ProjectSettings().model_name)
    else:
        versions = Registry().versions()
    rows = [
        {
            "version": v.version,
            "production": v.in_production,
            **v.metrics,
            "alpha": v.tags.get("param.alpha"),
            "data_sha256": v.tags.get("data_sha256", "")[:12],
            "git_commit": v.tags.get("git_commit", "")[:12],
            "decision": v.tags.get("decision"),
        }
        for v in versions
    ]
    return pd.DataFrame(rows).set_index("version") if rows else pd.DataFrame()


def production_model(target: str = "local"):
    """The registry version serving production (:class:`amlops.registry.base.Version`)."""
    check_target(target)
    if target == "azure":
        current = operations.production_version(_azure(), ProjectSettings().model_name)
    else:
        current = Registry().production()
    if current is None:
        raise LookupError("no version is in production yet: run 01-create-and-publish-pipeline first")
    return current


def deploy(target: str = "local") -> tuple[Endpoint, object]:
    """Deploy the production model and smoke-test it.

    Locally the endpoint keeps running in the background (``workflow.teardown`` or
    ``python -m amlops undeploy`` stops it); on Azure it is a new deployment on the pre-production managed
    online endpoint, which receives traffic only after its smoke test passes.

    Returns:
        The endpoint and the smoke test's result.
    """
    check_target(target)
    if target == "azure":
        build_steps.release(PREPRODUCTION, version=production_model(target).version, client=_azure())
        return endpoint(target), build_steps.smoke(PREPRODUCTION, client=_azure())

    # Refuses a retired version, smoke-tests, records the deployment on the version (as `python -m amlops deploy`).
    state, smoke = local_deploy.deploy_local(settings=ProjectSettings())
    return _local_endpoint(state), smoke


def endpoint(target: str = "local") -> Endpoint:
    """The endpoint deployed by :func:`deploy` (URL and key)."""
    check_target(target)
    if target == "azure":
        details, key = build_steps.endpoint_access(PREPRODUCTION, client=_azure())
        traffic = details["traffic"]
        if not traffic:
            raise LookupError(f"endpoint {details['name']} serves nothing yet: run 02-deploy-real-time-service")
        live = max(traffic, key=traffic.get)
        name, version = rollout.model_of(_azure().online_deployments.get(name=live, endpoint_name=details["name"]))
        return Endpoint(details["scoring_uri"], key, name, version, details["swagger_uri"])

    return _local_endpoint(read_state(ProjectSettings().endpoints_dir))


def teardown(target: str = "local") -> None:
    """Stop the local endpoint (Azure endpoints are left for the release pipeline to manage)."""
    check_target(target)
    if target == "local":
        local_deploy.undeploy_local(settings=ProjectSettings())


def _local_endpoint(state) -> Endpoint:
    return Endpoint(state.scoring_uri, None, state.model_name, state.model_version, state.swagger_uri)
