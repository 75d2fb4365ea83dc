"""The training pipeline run locally: prep → train → evaluate → register, chained through folders.

Each step is called through its CLI's ``main`` with folder arguments, exactly as an Azure ML pipeline
job calls it, so a local run exercises the same contract. The run is an MLflow parent run; the train
step's run is nested under it.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import shutil
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from amlops.core import config
from amlops.core.contract import CONTRACT_FILE
from amlops.core.errors import AmlopsError
from amlops.core.files import read_json, write_json
from amlops.core.settings import (
    PACKAGE_DIR,
    RUNCONFIG_FILE,
    DataSettings,
    ProjectSettings,
)
from amlops.registry import tracking
from amlops.steps import evaluate, prep, register
from amlops.steps import train as train_step

log = logging.getLogger(__name__)

STEPS = ("prep", "train", "evaluate", "register")


@dataclass(frozen=True)
class PipelineResult:
    """What a pipeline run produced."""

    run_id: str
    folder: Path
    fingerprint: dict
    training: dict
    decision: evaluate.Decision
    registration: dict


def run(
    data_path: Path | None = None,
    *,
    promote: bool = True,
    settings: ProjectSettings | None = None,
    params: dict[str, Any] | None = None,
    tags: dict[str, str] | None = None,
) -> PipelineResult:
    """Run the four steps in order and return their outputs.

    Args:
        data_path: CSV to train on; the committed snapshot when omitted.
        promote: Whether the register step may move the production marker.
        settings: Project settings (``runconfig_file`` holds the hyperparameters); from the environment when omitted.
        params: Hyperparameters replacing those of the run configuration (``contract.yml`` declares them).
        tags: Extra tags for the pipeline's MLflow run.
    """
    import mlflow

    settings = settings or ProjectSettings()
    runconfig = config.load_runconfig(settings.runconfig_file)
    DataSettings()  # fail on a bad AMLOPS_DATA_* value before any work is done
    chosen = training_params(settings, runconfig, params)
    script = train_script(settings, runconfig)
    train_step.load_build(script)  # fail on a broken train.py before any work is done
    train_arguments = [item for name, value in chosen.items() for item in (f"--{name}", str(value))]
    data_path = Path(data_path or settings.data_snapshot)
    tracking.configure(settings)
    # The code and run configuration this run executes, as a published pipeline records them.
    tags = {"step": "pipeline", "code_sha256": code_fingerprint(settings), **(tags or {})}
    with mlflow.start_run(run_name="training-pipeline", tags=tags) as parent:
        run_id = parent.info.run_id
        folder = settings.build_dir / "pipeline" / run_id
        outputs = {name: folder / name for name in STEPS}
        mlflow.log_params({"data": str(data_path), "train_arguments": " ".join(train_arguments)})
        prepared, trained, decided = (str(outputs[name]) for name in ("prep", "train", "evaluate"))
        commands = {
            "prep": (prep.main, ["--data", str(data_path), "--out", prepared]),
            "train": (
                functools.partial(train_step.script_main, script),
                ["--data", prepared, "--out", trained, "--pipeline-run-id", run_id, *train_arguments],
            ),
            "evaluate": (evaluate.main, ["--model", trained, "--data", prepared, "--out", decided]),
            "register": (
                register.main,
                [
                    "--model",
                    trained,
                    "--decision",
                    decided,
                    "--data",
                    prepared,
                    "--out",
                    str(outputs["register"]),
                    "--pipeline-run-id",
                    run_id,
                    *([] if promote else ["--no-promote"]),
                ],
            ),
        }
        started = time.perf_counter()
        for number, (name, (main, argv)) in enumerate(commands.items(), start=1):
            log.info("pipeline: step %d/%d %s", number, len(commands), name)
            main(argv)
        result = result_of(run_id, folder)
        mlflow.set_tags(
            {
                "decision": result.decision.outcome,
                "registered_version": result.registration["registered_version"] or "none",
            }
        )
        mlflow.log_artifacts(str(outputs["evaluate"]), artifact_path="evaluate")
        mlflow.log_metric("pipeline_seconds", time.perf_counter() - started)
    return result


def train_script(settings: ProjectSettings, runconfig: config.RunConfig) -> Path:
    """The training script ``sklearn.runconfig`` names, beside that file (a published snapshot has its own)."""
    return settings.runconfig_file.parent / runconfig.script


def training_params(
    settings: ProjectSettings, runconfig: config.RunConfig, overrides: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The hyperparameters a run trains with: the contract's defaults, the run configuration's, then ``overrides``.

    Raises:
        ConfigError: an argument of the run configuration is not a ``--name value`` pair.
        ContractError: naming a hyperparameter the contract does not declare, or a value of the wrong type.
    """
    given = {name: value for name, _, value in config.argument_pairs(runconfig, settings.runconfig_file)}
    return settings.contract.hyperparameters(given | (overrides or {}))


def result_of(run_id: str, folder: Path) -> PipelineResult:
    """A finished run's result, read back from its step folders."""
    folder = Path(folder)
    registration = read_json(folder / "register" / register.REGISTRATION_FILE)
    return PipelineResult(
        run_id=run_id,
        folder=folder,
        fingerprint=read_json(folder / "prep" / prep.FINGERPRINT_FILE),
        training=read_json(folder / "train" / train_step.INFO_FILE),
        # The register step's verdict: it re-applies the gate if production moved since evaluate ran.
        decision=evaluate.decision_from(registration["decision"]),
        registration=registration,
    )


# --- published pipelines ------------------------------------------------------------------------------
#
# v1 "published pipelines" became pipeline components in Azure ML v2 (see amlops.azure). Locally, a
# published pipeline is a named, versioned definition in the registry folder: its parameters' defaults,
# a snapshot of the code, run configuration and contract it was published from, and their sha256. Re-running it
# runs that snapshot (in a child process), whatever the checkout holds now, as Azure ML runs a
# component's code snapshot. The Python environment is the current one.

PUBLISHED_DIR = "pipelines"


@dataclass(frozen=True)
class PublishedPipeline:
    """A named, versioned pipeline definition that can be re-run with parameters."""

    name: str
    version: int
    parameters: dict
    steps: tuple[str, ...]
    code_sha256: str
    published_at: str
    description: str = ""


class PublishedRunFailed(AmlopsError, RuntimeError):
    """A published pipeline's run (a child process) failed; it has logged why. ``exit_code`` is its exit code."""

    def __init__(self, name: str, version: int, exit_code: int):
        super().__init__(f"pipeline {name!r} v{version} failed (exit code {exit_code}); its log is above")
        self.exit_code = exit_code


def code_fingerprint(settings: ProjectSettings) -> str:
    """sha256 of the package, run configuration, training script and contract: what a published version stands for."""
    return _fingerprint(PACKAGE_DIR, settings.runconfig_file, settings.contract_path)


def _fingerprint(package: Path, runconfig: Path, contract_file: Path) -> str:
    import hashlib

    digest = hashlib.sha256()
    named = [(p.relative_to(package.parent).as_posix(), p) for p in sorted(package.rglob("*.py"))]
    named.append((RUNCONFIG_FILE, runconfig))
    script = runconfig.parent / config.load_runconfig(runconfig).script
    if script.is_file():
        named.append((script.name, script))
    if contract_file.is_file():  # a version published before snapshots kept their contract has none
        named.append((CONTRACT_FILE, contract_file))
    for name, path in named:
        digest.update(name.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def _published_file(settings: ProjectSettings, name: str) -> Path:
    return settings.state_dir / PUBLISHED_DIR / f"{name}.json"


def snapshot_dir(settings: ProjectSettings, name: str, version: int) -> Path:
    """Where a published version keeps its code (``amlops/``), run configuration, training script and contract."""
    return settings.state_dir / PUBLISHED_DIR / name / f"v{version}"


def published_versions(name: str | None = None, settings: ProjectSettings | None = None) -> list[PublishedPipeline]:
    """Every published version of a pipeline (the project's by default), oldest first."""
    settings = settings or ProjectSettings()
    name = name or settings.pipeline_name
    path = _published_file(settings, name)
    if not path.is_file():
        return []
    return [PublishedPipeline(**{**v, "steps": tuple(v["steps"])}) for v in read_json(path)]


def publish(
    name: str | None = None,
    *,
    parameters: dict | None = None,
    description: str = "",
    settings: ProjectSettings | None = None,
) -> PublishedPipeline:
    """Publish the pipeline under ``name``; publishing an unchanged definition returns the latest version.

    Args:
        name: Pipeline name (default: the project's, ``<model name>-training``).
        parameters: Defaults for ``data``, ``promote`` and the hyperparameters; the run configuration's otherwise.
        description: Free text shown in listings.
        settings: Project settings.
    """
    from datetime import datetime, timezone

    settings = settings or ProjectSettings()
    name = name or settings.pipeline_name
    runconfig = config.load_runconfig(settings.runconfig_file)
    hyperparameters = training_params(settings, runconfig)
    defaults = {"data": str(settings.data_snapshot.relative_to(settings.root)), "promote": True, **hyperparameters}
    unknown = set(parameters or {}) - defaults.keys()
    if unknown:
        raise ValueError(f"unknown pipeline parameter(s) {sorted(unknown)}; known: {sorted(defaults)}")
    defaults |= parameters or {}
    defaults |= settings.contract.hyperparameters({k: v for k, v in defaults.items() if k in hyperparameters})
    versions = published_versions(name, settings)
    fingerprint = code_fingerprint(settings)
    latest = versions[-1] if versions else None
    if latest and latest.parameters == defaults and latest.code_sha256 == fingerprint:
        log.info("pipeline %s: unchanged since version %d; not publishing again", name, latest.version)
        return latest
    new = PublishedPipeline(
        name=name,
        version=(latest.version + 1) if latest else 1,
        parameters=defaults,
        steps=STEPS,
        code_sha256=fingerprint,
        published_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        description=description,
    )
    snapshot = snapshot_dir(settings, name, new.version)
    shutil.rmtree(snapshot, ignore_errors=True)  # left by a publish that failed before its index was written
    shutil.copytree(PACKAGE_DIR, snapshot / PACKAGE_DIR.name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    shutil.copy2(settings.runconfig_file, snapshot / RUNCONFIG_FILE)
    shutil.copy2(train_script(settings, runconfig), snapshot / runconfig.script)
    shutil.copy2(settings.contract_path, snapshot / CONTRACT_FILE)
    write_json(_published_file(settings, name), [asdict(v) for v in [*versions, new]])
    log.info("pipeline %s: published version %d (code snapshot in %s)", name, new.version, snapshot)
    return new


def run_published(
    name: str | None = None,
    version: int | None = None,
    settings: ProjectSettings | None = None,
    **overrides,
) -> PipelineResult:
    """Re-run a published pipeline (latest version by default) with some parameters overridden.

    The run uses the version's code snapshot, checked against the sha256 recorded at publishing; a version
    published without one runs the checkout's code and warns if it changed.

    Args:
        name: Pipeline name (default: the project's).
        version: Published version; the latest when omitted.
        settings: Project settings.
        **overrides: New values for ``data``, ``promote`` or a hyperparameter.

    Raises:
        LookupError: no such published version.
        ConfigError: the code snapshot was altered.
        PublishedRunFailed: the run failed (its own log says why; ``exit_code`` is the CLI's).
    """
    settings = settings or ProjectSettings()
    name = name or settings.pipeline_name
    versions = published_versions(name, settings)
    if version is None:
        chosen = versions[-1] if versions else None
    else:
        chosen = next((v for v in versions if v.version == version), None)
    if chosen is None:
        known = ", ".join(str(v.version) for v in versions) or "none"
        raise LookupError(f"pipeline {name!r} version {version or 'latest'} is not published (published: {known})")
    unknown = set(overrides) - chosen.parameters.keys()
    if unknown:
        raise ValueError(f"unknown pipeline parameter(s) {sorted(unknown)}; known: {sorted(chosen.parameters)}")
    parameters = chosen.parameters | overrides
    tags = {"published_pipeline": name, "published_version": str(chosen.version)}
    snapshot = snapshot_dir(settings, name, chosen.version)
    if not snapshot.is_dir():  # published before versions kept their code: the checkout's code runs
        if code_fingerprint(settings) != chosen.code_sha256:
            log.warning(
                "pipeline %s v%d has no code snapshot and the code or sklearn.runconfig changed since it was "
                "published; publish again to record the new definition",
                name,
                chosen.version,
            )
        return run(
            settings.root / parameters["data"],
            promote=bool(parameters["promote"]),
            settings=settings,
            params={k: v for k, v in parameters.items() if k not in ("data", "promote")},
            tags=tags,
        )
    published_with = _fingerprint(snapshot / PACKAGE_DIR.name, snapshot / RUNCONFIG_FILE, snapshot / CONTRACT_FILE)
    if published_with != chosen.code_sha256:
        raise config.ConfigError(
            f"{snapshot}: the code snapshot of pipeline {name!r} v{chosen.version} does not match the sha256 "
            "recorded when it was published (altered?); publish again"
        )
    return _run_snapshot(snapshot, settings, parameters, tags, name, chosen.version)


def _run_snapshot(
    snapshot: Path, settings: ProjectSettings, parameters: dict, tags: dict[str, str], name: str, version: int
) -> PipelineResult:
    """Run the pipeline with a published version's code: ``python -m amlops pipeline run`` from its snapshot."""
    import mlflow

    environ = {f"AMLOPS_{key.upper()}": str(value) for key, value in settings.model_dump().items() if value is not None}
    environ["AMLOPS_RUNCONFIG"] = str(snapshot / RUNCONFIG_FILE)
    if (snapshot / CONTRACT_FILE).is_file():
        environ["AMLOPS_CONTRACT_FILE"] = str(snapshot / CONTRACT_FILE)
    # The snapshot's package comes first: the child starts in the snapshot folder and has it on its path.
    environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(snapshot), os.environ.get("PYTHONPATH")]))
    command = [
        sys.executable,
        "-m",
        "amlops",
        "pipeline",
        "run",
        "--target",
        "local",
        "--data",
        str(settings.root / parameters["data"]),
        *(
            item
            for name, value in parameters.items()
            if name not in ("data", "promote")
            for item in ("--param", f"{name}={value}")
        ),
        *([] if parameters["promote"] else ["--no-promote"]),
    ]
    log.info("pipeline %s v%d: running its code snapshot %s", name, version, snapshot)
    done = subprocess.run(command, env=os.environ | environ, cwd=snapshot, stdout=subprocess.PIPE, text=True)
    if done.returncode != 0:
        raise PublishedRunFailed(name, version, done.returncode)
    outcome = json.loads(done.stdout)
    tracking.configure(settings)
    client = mlflow.MlflowClient()
    for key, value in tags.items():
        client.set_tag(outcome["run_id"], key, value)
    return result_of(outcome["run_id"], Path(outcome["folder"]))
