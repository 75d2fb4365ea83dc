"""``python -m amlops azure <command>``: the lifecycle on Azure ML v2.

Hooked into :mod:`amlops.cli` by :func:`register_commands`; ``python -m amlops.azure <command>`` runs the same
commands on their own. Only ``render`` works offline; every other command first finds the workspace and checks
the credentials, failing within seconds with what is missing. Progress goes to stdout, one line per step, with
the Azure ids created; keys are printed only by ``endpoint --show-keys``, and never logged.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from amlops.azure.settings import STAGES, AzureSettings
from amlops.settings import ProjectSettings

log = logging.getLogger("amlops.azure")


def say(line: str) -> None:
    """One progress line on stdout."""
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def _connect(args: argparse.Namespace) -> Any:
    from amlops.azure.connection import connect

    return connect(args.workspace_config)


def _project() -> Any:
    from amlops.azure.translate import Project

    return Project.load()


def _guard(handler: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """Azure failures become one error line and exit code 1 (configuration errors are left to amlops.cli)."""

    def run(args: argparse.Namespace) -> int:
        from azure.core.exceptions import AzureError

        from amlops.azure.operations import AzureOperationError

        # azure-ai-ml announces each experimental class it loads (schedules, data collectors) as a warning.
        logging.getLogger("azure.ai.ml._utils._experimental").setLevel(logging.ERROR)
        try:
            return handler(args)
        except AzureOperationError as error:
            log.error("%s", error)
            return 1
        except AzureError as error:
            log.error("Azure ML refused: %s", " ".join(str(error).split())[:2000])
            return 1

    run.__doc__ = handler.__doc__
    return run


# --- commands ---------------------------------------------------------------------------------------------------


def cmd_render(args: argparse.Namespace) -> int:
    """Write every v2 entity as YAML with $schema (offline), then load each back and validate the jobs."""
    from amlops.azure import render

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
            from amlops.azure.operations import _is_missing

            if not _is_missing(error):
                raise
            missing.append(name)
            say(f"  MISSING {role}: {name}")
            continue
        say(f"  ok      {role}: {name} ({compute.type}, {getattr(compute, 'provisioning_state', '?')})")
    return 1 if missing else 0


def cmd_submit(args: argparse.Namespace) -> int:
    """Submit the training pipeline (or the sklearn.runconfig command job) and follow it to Completed."""
    from amlops.azure import operations, render

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
    return 0


def _offline() -> Any:
    from amlops.azure.connection import offline_client

    return offline_client()


def cmd_publish(args: argparse.Namespace) -> int:
    """Register the training pipeline as a pipeline component (v2 published pipeline), optionally scheduled."""
    from amlops.azure import build_steps

    published = build_steps.publish(
        client=_connect(args), data=args.data, version=args.version, schedule=args.schedule, say=say
    )
    say(f"run it: az ml job create --file <job.yml with component: azureml:{published.name}:{published.version}>")
    return 0


def cmd_register_model(args: argparse.Namespace) -> int:
    """Register the trained model of a completed pipeline job, with the same lineage tags as locally."""
    from amlops.azure import operations

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


def _steps(text: str) -> list[int]:
    try:
        steps = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected percentages like 10,50,100") from None
    if not steps or any(not 0 < step <= 100 for step in steps):
        raise argparse.ArgumentTypeError(f"{text!r}: each step must be within 1-100")
    return steps


def cmd_deploy(args: argparse.Namespace) -> int:
    """Release a model version to a stage as a new deployment beside the live one (blue/green)."""
    from amlops.azure import build_steps, translate

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


def cmd_rollback(args: argparse.Namespace) -> int:
    """Send all traffic back to the previous deployment and smoke-test it."""
    from amlops.azure import build_steps, operations

    settings = ProjectSettings()
    endpoint_name = AzureSettings().endpoint_name(args.stage, settings)
    client = _connect(args)
    deployment_name, deployment = build_steps.rollback(args.stage, to=args.to, client=client, say=say)
    if args.no_smoke:
        return 0
    result = build_steps.smoke_live(client, endpoint_name, operations.model_of(deployment))
    model_name, version = result.model_name, result.model_version
    say(f"rolled back: {deployment_name} serves {model_name}:{version} and passed the smoke test")
    return 0


def cmd_smoke(args: argparse.Namespace) -> int:
    """Smoke-test a stage's endpoint: the deployment taking all traffic must answer with its model's predictions."""
    from amlops.azure import build_steps

    result = build_steps.smoke(args.stage, client=_connect(args))
    say(f"smoke test passed: {args.stage} serves {result.model_name}:{result.model_version}")
    return 0


def cmd_cleanup(args: argparse.Namespace) -> int:
    """Delete the deployments a stage keeps at 0% traffic, once its release is final."""
    from amlops.azure import operations

    endpoint_name = AzureSettings().endpoint_name(args.stage, ProjectSettings())
    deleted = operations.delete_idle(_connect(args), endpoint_name, say=say)
    say(f"deleted {deleted or 'nothing'} from {endpoint_name}")
    return 0


def cmd_promote(args: argparse.Namespace) -> int:
    """Move the registry's production marker to a version (after the production release succeeded)."""
    from amlops.azure import operations
    from amlops.governance import AzureRegistry

    name = ProjectSettings().model_name
    client = _connect(args)
    # Refuses a retired version and emits `model.promoted`, as the local `models promote` does.
    AzureRegistry(client, name).promote(operations.resolve_model_version(client, name, args.version), say=say)
    return 0


def cmd_endpoint(args: argparse.Namespace) -> int:
    """Show an endpoint's URL, auth mode, traffic and deployments (keys only with --show-keys, on stdout)."""
    from amlops.azure import operations

    endpoint_name = AzureSettings().endpoint_name(args.stage, ProjectSettings())
    client = _connect(args)
    details = operations.endpoint_details(client, endpoint_name)
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


# --- parser -----------------------------------------------------------------------------------------------------


def _workspace_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--workspace-config",
        type=Path,
        default=None,
        metavar="PATH",
        help="studio config.json (default: AMLOPS_AZURE_WORKSPACE_CONFIG, AZUREML_* variables, ./config.json)",
    )


def _stage_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--stage",
        choices=sorted(STAGES),
        default="preprod",
        help="release stage: preprod (deploymentConfig.yml) or prod (deploymentConfig.production.yml)",
    )


def add_subcommands(commands: argparse._SubParsersAction) -> None:
    """Add the Azure commands to a subparsers object (shared by ``amlops azure`` and ``amlops.azure``)."""

    def command(name: str, handler: Callable, help_text: str, *, workspace: bool = True) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help_text, description=help_text)
        sub.set_defaults(handler=_guard(handler))
        if workspace:
            _workspace_option(sub)
        return sub

    render = command("render", cmd_render, "write the v2 YAML files into build/azureml (offline)", workspace=False)
    render.add_argument("--out", type=Path, default=None, help="output folder (default: build/azureml)")
    render.add_argument("--data", type=Path, default=None, help="training CSV (default: the snapshot)")
    render.add_argument("--model-version", default=None, help="model version the deployments serve (default: latest)")
    render.add_argument("--deployment-name", default="blue", help="name of the rendered deployments")
    render.add_argument("--cron", default="0 6 * * 1", help="schedule of the published pipeline, UTC")

    command("check", cmd_check, "check the workspace, the credentials and the computes the files name")

    submit = command("submit", cmd_submit, "submit the training pipeline and follow it until it completes")
    submit.add_argument("--job", choices=("pipeline", "train"), default="pipeline", help="train: sklearn.runconfig")
    submit.add_argument("--data", type=Path, default=None, help="training CSV (default: the snapshot)")
    submit.add_argument("--no-wait", action="store_true", help="return once submitted")
    submit.add_argument("--stream-logs", action="store_true", help="stream the job's logs while waiting")
    submit.add_argument("--poll-seconds", type=float, default=15.0)
    submit.add_argument("--timeout", type=float, default=None, help="seconds to wait before failing")

    publish = command("publish", cmd_publish, "register the pipeline as a pipeline component (+ disabled schedule)")
    publish.add_argument("--version", default=None, help="component version (default: UTC timestamp)")
    publish.add_argument("--schedule", default=None, metavar="CRON", help="also create a disabled schedule (UTC)")
    publish.add_argument("--data", type=Path, default=None, help="training CSV of scheduled runs")

    register = command("register-model", cmd_register_model, "register a pipeline job's model with lineage tags")
    register.add_argument("--job", required=True, help="name of a completed training pipeline job")
    register.add_argument("--force", action="store_true", help="register even if the job's decision was not to")

    deploy = command("deploy", cmd_deploy, "release a model version as a new deployment (blue/green)")
    _stage_option(deploy)
    deploy.add_argument("--version", default=None, help="registered model version (default: latest)")
    deploy.add_argument("--config", type=Path, default=None, help="deployment config (default: the stage's)")
    deploy.add_argument("--deployment-name", default=None, help="default: v<version>-<timestamp>")
    deploy.add_argument("--traffic-steps", type=_steps, default=[100], help="e.g. 10,50,100 (default: 100)")
    deploy.add_argument("--mirror", type=int, default=0, metavar="PERCENT", help="mirror live traffic first (0-50)")
    deploy.add_argument("--mirror-seconds", type=float, default=300.0, help="how long to mirror")
    deploy.add_argument("--step-seconds", type=float, default=60.0, help="how long to watch each traffic step")
    deploy.add_argument("--keep-old", action="store_true", help="keep the old deployment (at 0%%) for rollback")
    deploy.add_argument("--keep-failed", action="store_true", help="keep a failed new deployment for its logs")

    rollback = command("rollback", cmd_rollback, "send all traffic back to the previous deployment")
    _stage_option(rollback)
    rollback.add_argument("--to", default=None, help="deployment to return to (default: the recorded previous one)")
    rollback.add_argument("--no-smoke", action="store_true", help="skip the smoke test afterwards")

    smoke = command("smoke", cmd_smoke, "smoke-test a stage's endpoint through its URL and key")
    _stage_option(smoke)

    cleanup = command("cleanup", cmd_cleanup, "delete the deployments a stage keeps at 0%% traffic (after a release)")
    _stage_option(cleanup)

    promote = command("promote", cmd_promote, "mark a model version as production in the workspace registry")
    promote.add_argument("--version", required=True, help="registered model version")

    endpoint = command("endpoint", cmd_endpoint, "show an endpoint's URL, traffic and deployments")
    _stage_option(endpoint)
    endpoint.add_argument("--show-keys", action="store_true", help="print the keys (stdout only, never logged)")
    endpoint.add_argument("--json", action="store_true")


def register_commands(commands: argparse._SubParsersAction) -> None:
    """Add ``azure`` and its commands to the ``python -m amlops`` subparsers."""
    azure = commands.add_parser(
        "azure",
        help="the lifecycle on Azure ML v2 (render, check, submit, publish, register-model, deploy, smoke, "
        "rollback, promote, cleanup, endpoint)",
        description="The lifecycle on Azure ML v2. Only `render` works offline.",
    )
    add_subcommands(azure.add_subparsers(dest="azure_command", required=True, metavar="AZURE_COMMAND"))


def parser() -> argparse.ArgumentParser:
    """``python -m amlops.azure``: the Azure commands on their own."""
    cli = argparse.ArgumentParser(prog="python -m amlops.azure", description=__doc__.splitlines()[0])
    cli.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    add_subcommands(cli.add_subparsers(dest="command", required=True, metavar="COMMAND"))
    return cli


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m amlops.azure``."""
    from amlops.cli import guarded, setup_logging

    args = parser().parse_args(argv)
    setup_logging(args.verbose)
    return guarded(lambda: args.handler(args))
