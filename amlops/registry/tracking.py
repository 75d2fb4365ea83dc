"""MLflow set-up: the tracking server and model registry the pipeline talks to.

Locally that is a SQLite file under ``.mlops/`` with an explicit artifact location, so nothing lands in
``./mlruns`` of whatever directory a command happens to run in.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path

from amlops.core.errors import BadInputError
from amlops.core.files import file_lock
from amlops.core.settings import ProjectSettings
from amlops.core.tags import ROOT_RUN_TAG

log = logging.getLogger(__name__)

#: ``azureml://`` tracking URIs whose credentials this process, or the one that started it (a pipeline's steps run
#: as child processes), has checked; a failed check is not recorded.
CHECKED_VARIABLE = "AMLOPS_TRACKING_CHECKED"
#: Checks a tracking URI's credentials before MLflow may use it, by URI scheme. Outside a job, azureml-mlflow
#: falls back to an interactive login without credentials; the Azure layer installs the check for ``azureml:``
#: (:func:`amlops.azure.connection.install_tracking_check`), and without it such a URI is refused.
CREDENTIAL_CHECKS: dict[str, Callable[[str], None]] = {}


class TrackingCredentialsError(BadInputError):
    """An ``azureml://`` tracking URI outside an Azure ML job, with no credential check installed."""


def configure(settings: ProjectSettings | None = None) -> str:
    """Point MLflow at the project's tracking store and return the experiment id.

    Args:
        settings: Project settings; read from the environment when omitted.
    """
    import mlflow

    settings = settings or ProjectSettings()
    uri = settings.resolved_tracking_uri
    if uri.startswith("azureml:") and not settings.in_azureml_job and uri not in _checked():
        # Inside a job Azure ML provides the token; elsewhere, once per process and URI (configure runs per registry).
        check = CREDENTIAL_CHECKS.get("azureml:")
        if check is None:
            raise TrackingCredentialsError(
                f"tracking URI {uri.split('?')[0]}: an Azure ML workspace is used through the Azure target "
                "(`python -m amlops ... --target azure`, or the notebooks' workspace choice), which checks "
                "credentials first"
            )
        check(uri)
        os.environ[CHECKED_VARIABLE] = " ".join([*_checked(), uri])
    if uri.startswith("sqlite:"):
        settings.artifact_root.mkdir(parents=True, exist_ok=True)
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    if settings.in_azureml_job and os.environ.get("MLFLOW_RUN_ID"):
        # Azure ML started this job's run in the job's own experiment, whatever the project's is called: log there.
        experiment_id = mlflow.get_run(os.environ["MLFLOW_RUN_ID"]).info.experiment_id
        mlflow.set_experiment(experiment_id=experiment_id)
        return experiment_id
    if uri.startswith("sqlite:///"):
        # A new SQLite store creates its tables on first use: two processes doing it at once collide.
        with file_lock(Path(uri.removeprefix("sqlite:///")).with_suffix(".init.lock")):
            experiment_id = _experiment(settings, uri)
    else:
        experiment_id = _experiment(settings, uri)
    mlflow.set_experiment(experiment_id=experiment_id)
    log.debug("MLflow tracking at %s, experiment %s", uri, experiment_id)
    return experiment_id


def _checked() -> list[str]:
    return os.environ.get(CHECKED_VARIABLE, "").split()


def _experiment(settings: ProjectSettings, uri: str) -> str:
    """The experiment's id, creating it (with an explicit artifact location) if needed."""
    import mlflow

    client = mlflow.MlflowClient()
    experiment = client.get_experiment_by_name(settings.experiment_name)
    if experiment is not None:
        return experiment.experiment_id
    location = (settings.artifact_root / settings.experiment_name).as_uri() if uri.startswith("sqlite:") else None
    try:
        return client.create_experiment(settings.experiment_name, artifact_location=location)
    except mlflow.exceptions.MlflowException:
        # Another process created it between our look-up and create: use theirs.
        return client.get_experiment_by_name(settings.experiment_name).experiment_id


def enclosing_pipeline_job(settings: ProjectSettings | None = None) -> str | None:
    """Inside a step of an Azure ML pipeline job, the pipeline job's name (lineage); ``None`` anywhere else.

    Azure ML runs each step as a child job whose MLflow run (``MLFLOW_RUN_ID``) carries ``mlflow.rootRunId``:
    the pipeline job. A standalone job is its own root. A failed look-up is logged and gives ``None``: it
    costs the version one lineage tag, never its registration.
    """
    import mlflow

    settings = settings or ProjectSettings()
    run_id = os.environ.get("MLFLOW_RUN_ID")
    if not (settings.in_azureml_job and run_id):
        return None
    try:
        root = mlflow.MlflowClient(settings.resolved_tracking_uri).get_run(run_id).data.tags.get(ROOT_RUN_TAG)
    except mlflow.exceptions.MlflowException as error:
        log.warning("could not read the pipeline job of run %s (%s): pipeline_run_id is not recorded", run_id, error)
        return None
    return root if root and root != run_id else None


def log_params_once(params: dict) -> dict[str, str]:
    """Log ``params`` on the active run, leaving alone any the run already holds; return what was logged.

    Inside an Azure ML job the run may already hold a parameter of the same name (a job input), and MLflow refuses
    to change a logged value. The same value in another spelling (``1`` and ``1.0``) is the same parameter; a
    different value is logged as ``amlops.<name>``, with a warning naming both.
    """
    import mlflow

    active = mlflow.active_run()
    held = mlflow.get_run(active.info.run_id).data.params if active else {}
    fresh: dict[str, str] = {}
    for name, value in params.items():
        if name not in held:
            fresh[name] = str(value)
        elif not _same_value(held[name], value):
            log.warning(
                "parameter %s: the run already holds %r; this run used %r (logged as amlops.%s)",
                name,
                held[name],
                value,
                name,
            )
            fresh[f"amlops.{name}"] = str(value)
    mlflow.log_params(fresh)
    return fresh


def _same_value(held: str, value: object) -> bool:
    if held == str(value):
        return True
    try:
        return float(held) == float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return False
