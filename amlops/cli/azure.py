"""``python -m amlops azure <command>``: the lifecycle on Azure ML v2.

The parser (:mod:`amlops.cli.parser`) names these handlers. Only ``render`` works offline; every other command
first finds the workspace and checks the credentials, failing within seconds with what is missing. Progress goes
to stdout, one line per step, with the Azure ids created; keys are printed only by ``endpoint --show-keys``, and
never logged.
"""

from __future__ import annotations

import argparse
import functools
import json
import logging
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from amlops.app import release_steps
from amlops.azure import build_steps, connection, data_assets, operations, render, rollout, translate
from amlops.azure.connection import offline_client
from amlops.azure.operations import is_missing
from amlops.azure.registry import AzureRegistry
from amlops.azure.translate import Project
from amlops.core.azure_settings import AzureSettings
from amlops.core.names import STAGES
from amlops.core.settings import ProjectSettings

log = logging.getLogger("amlops.azure")


def say(line: str) -> None:
    """One progress line on stdout."""
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def _connect(args: argparse.Namespace) -> Any:
    return connection.connect(args.workspace_config)


def _project() -> Any:
    return Project.load()


def _azure_errors(handler: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """What Azure ML refuses becomes one error line and exit code 1 (configuration errors keep their own codes)."""

    @functools.wraps(handler)
    def run(args: argparse.Namespace) -> int:
        with operations.refusals_reported():
            return handler(args)

    return run


# --- commands ---------------------------------------------------------------------------------------------------


@_azure_errors
def cmd_render(args: argparse.Namespace) -> int:
    """Write every v2 entity as YAML with $schema (offline), then load each back and validate the jobs."""
    project = _project()
    out = Path(args.out or project.settings.build_dir / "azureml")
    rendered = render.render(
        project,
        out,
        data=args.data,
        model_version=args.model_version,
        deployment_name=args.deployment_name,
        cron=args.cron,
    )
    render.verify(out)
    say(f"rendered {len(rendered)} files into {out} (each loads with azure.ai.ml; the jobs validate offline):")
    for item in rendered:
        say(f"  {item.file:42} {item.create}")
    say(f"run the commands from {out}; `python -m amlops azure deploy` does blue/green releases instead")
    return 0


@_azure_errors
def cmd_check(args: argparse.Namespace) -> int:
    """Find the workspace, check the credentials, and look up the computes the files name."""
    client = _connect(args)
    project = _project()
    workspace = client.workspaces.get(client.workspace_name)
    say(f"workspace {workspace.name} in {workspace.location} (resource group {client.resource_group_name})")
    wanted = {project.runconfig.target: f"training compute ({project.runconfig.script})"}
    for stage in STAGES.values():
        path = project.root / stage.config_file
        if path.is_file():
            config = project.deployment_config(path)
            if getattr(config, "computeTargetName", None):
                wanted[config.computeTargetName] = f"Kubernetes compute ({stage.description}, {stage.config_file})"
    missing = []
    for name, role in wanted.items():
        try:
            compute = client.compute.get(name)
        except Exception as error:
            if not is_missing(error):
                raise
            missing.append(name)
            say(f"  MISSING {role}: {name}")
            continue
        say(f"  ok      {role}: {name} ({compute.type}, {getattr(compute, 'provisioning_state', '?')})")
    return 1 if missing else 0


@_azure_errors
def cmd_submit(args: argparse.Namespace) -> int:
    """Submit the training pipeline (or the sklearn.runconfig command job) and follow it to Completed."""
    project = _project()
    assets = render.training_assets(project, project.settings.build_dir / "azureml-submit", args.data)
    job = assets.pipeline if args.job == "pipeline" else assets.train_job
    operations.validate_job(_offline(), job)
    client = _connect(args)
    finished = operations.submit(
        client,
        job,
        wait=not args.no_wait,
        poll_seconds=args.poll_seconds,
        timeout=args.timeout,
        stream_logs=args.stream_logs,
        say=say,
    )
    if not args.no_wait:
        say(f"job {finished.name} Completed")
        if args.job == "pipeline":  # its decision, and the events its register step emitted, delivered here
            outcome = build_steps.job_outcome(client, finished.name)
            say(f"decision: {outcome['outcome']}; registered version: {outcome['registered_version'] or 'none'}")
    return 0


def _offline() -> Any:

    return offline_client()


@_azure_errors
def cmd_publish(args: argparse.Namespace) -> int:
    """Register the training pipeline as a pipeline component (v2 published pipeline), optionally scheduled."""
    published = build_steps.publish(
        client=_connect(args), data=args.data, version=args.version, schedule=args.schedule, say=say
    )
    say(f"run it: az ml job create --file <job.yml with component: azureml:{published.name}:{published.version}>")
    return 0


@_azure_errors
def cmd_release_step(args: argparse.Namespace) -> int:
    """Run one step of the Azure release, reading the build artifact's release.json."""
    release_steps.run(args.step, release_steps.ReleaseContext(args.artifact_dir.resolve(), args.redeploy, say))
    return 0


@_azure_errors
def cmd_register_data(args: argparse.Namespace) -> int:
    """Register a CSV as the next version of the training data asset and move the training schedule to it."""
    project = _project()
    checked = data_assets.check_file(args.path, project.settings)  # before connecting: a bad file names its column
    client = _connect(args)
    name = args.name or translate.data_asset_name(project)
    reference = data_assets.register(client, checked, name, project.settings, description=args.description, say=say)
    if not args.keep_schedule and data_assets.retarget_schedule(client, project, reference, say=say) is None:
        say(f"no training schedule yet: `azure publish --schedule CRON --data azureml:{name}@latest` creates one")
    return 0


@_azure_errors
def cmd_register_model(args: argparse.Namespace) -> int:
    """Register the trained model of a completed pipeline job, with the same lineage tags as locally."""
    settings = ProjectSettings()
    client = _connect(args)
    with tempfile.TemporaryDirectory(prefix="amlops-job-") as scratch:
        operations.register_from_job(
            client,
            args.job,
            model_name=settings.model_name,
            root=settings.root,
            scratch=Path(scratch),
            force=args.force,
            say=say,
        )
    return 0


@_azure_errors
def cmd_deploy(args: argparse.Namespace) -> int:
    """Release a model version to a stage as a new deployment beside the live one (blue/green)."""
    # Every configuration error before any Azure call.
    project = translate.Project.load()
    project.deployment_config(Path(args.config or project.root / STAGES[args.stage].config_file))
    build_steps.release(
        args.stage,
        version=args.version,
        client=_connect(args),
        config=args.config,
        deployment_name=args.deployment_name,
        say=say,
        traffic_steps=args.traffic_steps,
        mirror_percent=args.mirror,
        mirror_seconds=args.mirror_seconds,
        step_seconds=args.step_seconds,
        keep_old=args.keep_old,
        keep_failed=args.keep_failed,
    )
    return 0


@_azure_errors
def cmd_rollback(args: argparse.Namespace) -> int:
    """Send all traffic back to the previous deployment and smoke-test it."""
    settings = ProjectSettings()
    endpoint_name = AzureSettings().endpoint_name(args.stage, settings)
    client = _connect(args)
    deployment_name, deployment = build_steps.rollback(args.stage, to=args.to, client=client, say=say)
    if args.no_smoke:
        return 0
    result = build_steps.smoke_live(client, endpoint_name, rollout.model_of(deployment))
    model_name, version = result.model_name, result.model_version
    say(f"rolled back: {deployment_name} serves {model_name}:{version} and passed the smoke test")
    return 0


@_azure_errors
def cmd_smoke(args: argparse.Namespace) -> int:
    """Smoke-test a stage's endpoint: the deployment taking all traffic must answer with its model's predictions."""
    result = build_steps.smoke(args.stage, client=_connect(args))
    say(f"smoke test passed: {args.stage} serves {result.model_name}:{result.model_version}")
    return 0


@_azure_errors
def cmd_cleanup(args: argparse.Namespace) -> int:
    """Delete the deployments a stage keeps at 0% traffic, once its release is final."""
    deleted = build_steps.cleanup(args.stage, client=_connect(args), say=say)
    say(f"deleted {deleted or 'nothing'} from {AzureSettings().endpoint_name(args.stage, ProjectSettings())}")
    return 0


@_azure_errors
def cmd_promote(args: argparse.Namespace) -> int:
    """Move the registry's production marker to a version (after the production release succeeded)."""
    name = ProjectSettings().model_name
    client = _connect(args)
    # Refuses a retired version and emits `model.promoted`, as the local `models promote` does.
    AzureRegistry(client, name).promote(operations.resolve_model_version(client, name, args.version), say=say)
    return 0


@_azure_errors
def cmd_endpoint(args: argparse.Namespace) -> int:
    """Show an endpoint's URL, auth mode, traffic and deployments (keys only with --show-keys, on stdout)."""
    endpoint_name = AzureSettings().endpoint_name(args.stage, ProjectSettings())
    client = _connect(args)
    details = rollout.endpoint_details(client, endpoint_name)
    if args.show_keys:
        keys = client.online_endpoints.get_keys(endpoint_name)
        details["keys"] = {
            name: getattr(keys, name)
            for name in ("primary_key", "secondary_key", "access_token", "expiry_time_utc")
            if getattr(keys, name, None)
        }
    if args.json:
        say(json.dumps(details, indent=2, default=str))
        return 0
    say(f"endpoint   {details['name']} ({details['kind']}, auth {details['auth_mode']}, {details['state']})")
    say(f"scoring    {details['scoring_uri']}")
    say(f"swagger    {details['swagger_uri']}")
    say(f"traffic    {details['traffic']}  mirror {details['mirror_traffic']}")
    for item in details["deployments"]:
        size = f"{item['instance_count']} x {item['instance_type']}"
        say(f"deployment {item['name']}: {item['model']} ({item['state']}, {size})")
    for name, value in details.get("keys", {}).items():
        say(f"{name:10} {value}")
    if not args.show_keys:
        say("keys       hidden; --show-keys prints them (to stdout only)")
    return 0
