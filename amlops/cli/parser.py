"""The argument parser of ``python -m amlops``: every command, option and help text.

It imports nothing heavy, so ``--help`` is instant. Each command names its handler as ``"module:function"`` within
:mod:`amlops.cli`; :func:`amlops.cli.main.main` imports that module only when the command runs, so a command
loads only what it uses (``docs/architecture.md``).
"""

from __future__ import annotations

import argparse
import importlib
from pathlib import Path

from amlops.core.names import LOCAL_ENDPOINT, STAGES


class LazyChoices:
    """``choices`` read from a module only when a value is checked: the build steps live in :mod:`amlops.app.build`."""

    def __init__(self, module: str, name: str, *extra: str):
        self.module, self.name, self.extra = module, name, extra

    def _values(self) -> list[str]:
        return [*self.extra, *getattr(importlib.import_module(self.module), self.name)]

    def __contains__(self, value: object) -> bool:
        return value in self._values()

    def __iter__(self):
        return iter(self._values())


def _steps(text: str) -> list[int]:
    try:
        steps = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected percentages like 10,50,100") from None
    if not steps or any(not 0 < step <= 100 for step in steps):
        raise argparse.ArgumentTypeError(f"{text!r}: each step must be within 1-100")
    return steps


def _name_value(text: str) -> tuple[str, str]:
    name, separator, value = text.partition("=")
    if not separator or not name.strip():
        raise argparse.ArgumentTypeError(f"{text!r}: write NAME=VALUE, e.g. max_depth=4")
    return name.strip(), value.strip()


def _param_option(parser: argparse.ArgumentParser, help_text: str) -> None:
    parser.add_argument(
        "--param", dest="params", action="append", type=_name_value, default=[], metavar="NAME=VALUE", help=help_text
    )


def _target_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--target", choices=["local", "azure"], default=None, help="registry and endpoints (default: AMLOPS_TARGET)"
    )
    parser.add_argument(
        "--workspace-config",
        type=Path,
        default=None,
        help="studio config.json of the workspace to use (implies --target azure)",
    )


def _unescaped(help_text: str) -> str:
    """A help text as a description: argparse %-formats help strings (``0%%``), not descriptions."""
    return help_text.replace("%%", "%")


def parser() -> argparse.ArgumentParser:
    """The command-line interface."""
    cli = argparse.ArgumentParser(
        prog="python -m amlops", description="One command per lifecycle stage, run locally (the default)."
    )
    cli.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    commands = cli.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, handler: str, help_text: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help_text, description=_unescaped(help_text))
        sub.set_defaults(handler=handler)
        return sub

    snapshot = command("snapshot", "commands:cmd_snapshot", "record the data snapshot's sha256 (after you replace it)")
    snapshot.add_argument("--data", type=Path, default=None, help="the CSV (default: contract.yml's data)")
    validate = command("validate", "commands:cmd_validate", "check a data file against the schema (data quality)")
    validate.add_argument("--data", type=Path, default=None, help="CSV to check (default: the data snapshot)")
    pipeline_cli = commands.add_parser("pipeline", help="run, publish or list the training pipeline")
    pipeline_commands = pipeline_cli.add_subparsers(dest="pipeline_command", required=True, metavar="ACTION")
    run_pipeline = pipeline_commands.add_parser("run", help="run prep → train → evaluate → register locally")
    run_pipeline.set_defaults(handler="commands:cmd_pipeline_run")
    run_pipeline.add_argument(
        "--data",
        type=Path,
        default=None,
        help="CSV to train on (default: the snapshot); on Azure also a data asset azureml:NAME:VERSION or @latest",
    )
    _param_option(run_pipeline, "a hyperparameter for this run (contract.yml: params), e.g. max_depth=4; repeatable")
    run_pipeline.add_argument(
        "--no-promote",
        dest="promote",
        action="store_false",
        help="register the candidate but leave production as it is",
    )
    run_pipeline.add_argument("--published", default=None, metavar="NAME[:VERSION]", help="run a published version")
    _target_options(run_pipeline)
    publish = pipeline_commands.add_parser("publish", help="publish the pipeline as a named, versioned definition")
    publish.set_defaults(handler="commands:cmd_pipeline_publish")
    publish.add_argument(
        "--name", default=None, help="local: any (default <model name>-training); Azure ML: the project's only"
    )
    publish.add_argument("--data", default=None, help="default data path (relative to the repository)")
    _param_option(publish, "a hyperparameter's default in the published version, e.g. max_depth=4; repeatable")
    publish.add_argument("--description", default="", help="what this published version changes")
    _target_options(publish)
    listing = pipeline_commands.add_parser("list", help="list a pipeline's published versions")
    listing.set_defaults(handler="commands:cmd_pipeline_list")
    listing.add_argument("--name", default=None, help="published pipeline (default: <model name>-training)")
    models_cli = commands.add_parser(
        "models", help="list, show, export, import, promote, retire or check registered model versions"
    )
    models_commands = models_cli.add_subparsers(dest="models_command", required=True, metavar="ACTION")
    models = models_commands.add_parser("list", help="registered versions, their metrics and the production one")
    models.set_defaults(handler="commands:cmd_models")
    models.add_argument("--json", action="store_true", help="print JSON instead of a table")
    _target_options(models)
    export = models_commands.add_parser("export", help="write a version (files, metrics, lineage) to an archive")
    export.set_defaults(handler="commands:cmd_models_export")
    export.add_argument("version", help="version number, NAME:VERSION, or 'production'")
    export.add_argument("--out", type=Path, required=True, help="archive to write (.tar.gz)")
    export.add_argument("--registry-uri", default=None, help="source MLflow registry (default: the project's)")
    _target_options(export)
    promote = models_commands.add_parser("promote", help="move the production marker to a version (after approval)")
    promote.set_defaults(handler="commands:cmd_models_promote")
    promote.add_argument("version", help="version number or NAME:VERSION")
    _target_options(promote)
    import_ = models_commands.add_parser("import", help="verify an exported archive and register it")
    import_.set_defaults(handler="commands:cmd_models_import")
    import_.add_argument("archive", type=Path, help="a .zip written by models export")
    import_.add_argument("--registry-uri", default=None, help="target MLflow registry (default: the project's)")
    import_.add_argument("--promote", action="store_true", help="also move the target's production marker")
    _target_options(import_)
    show = models_commands.add_parser("show", help="a version's metrics, lineage and live deployments")
    show.set_defaults(handler="commands:cmd_models_show")
    show.add_argument("model", nargs="?", default=None, help="NAME[:VERSION] or VERSION (default: production)")
    show.add_argument("--json", action="store_true", help="print JSON instead of a table")
    _target_options(show)
    retire = models_commands.add_parser("retire", help="mark a version as not to be served (deploys are refused)")
    retire.set_defaults(handler="commands:cmd_models_retire")
    retire.add_argument("model", help="NAME:VERSION or VERSION")
    retire.add_argument("--reason", required=True, help="why; recorded and shown in every refusal")
    retire.add_argument("--replacement", default=None, help="needed to retire production: the version replacing it")
    retire.add_argument("--replace", action="store_true", help="redeploy production wherever the version is live")
    retire.add_argument("--config", type=Path, default=None, help="local deployment config for the replacements")
    _target_options(retire)
    unretire = models_commands.add_parser("unretire", help="undo a retirement")
    unretire.set_defaults(handler="commands:cmd_models_unretire")
    unretire.add_argument("model", help="NAME:VERSION or VERSION")
    unretire.add_argument("--reason", default=None, help="why it comes back (kept in its record)")
    _target_options(unretire)
    check = models_commands.add_parser(
        "check", help="score production on newer labelled data: ok (exit 0) or degraded (exit 4)"
    )
    check.set_defaults(handler="commands:cmd_models_check")
    check.add_argument(
        "--data",
        type=Path,
        required=True,
        help="labelled CSV with the training schema, or a data asset azureml:NAME:VERSION (--target azure)",
    )
    check.add_argument("--retrain", action="store_true", help="start the training pipeline on it when degraded")
    check.add_argument("--json", action="store_true", help="print JSON instead of a table")
    _target_options(check)
    endpoints_cli = commands.add_parser("endpoints", help="endpoints and the model version each serves")
    endpoints_commands = endpoints_cli.add_subparsers(dest="endpoints_command", required=True, metavar="ACTION")
    endpoints_list = endpoints_commands.add_parser("list", help="each endpoint with the version it serves")
    endpoints_list.set_defaults(handler="commands:cmd_endpoints_list")
    endpoints_list.add_argument("--json", action="store_true", help="print JSON instead of a table")
    _target_options(endpoints_list)
    build_cli = command("build", "commands:cmd_build", "run a CI build step, or `all` of them in order (local dry run)")
    build_cli.add_argument(
        "step", choices=LazyChoices("amlops.app.build", "STEPS", "all"), metavar="STEP", help="a build step, or all"
    )
    build_cli.add_argument(
        "--artifact-dir",
        type=Path,
        default=Path("build/artifact"),
        help="where the build artifact is assembled ($(Build.ArtifactStagingDirectory) in CI)",
    )
    build_cli.add_argument(
        "--target", choices=["local", "azure"], default="local", help="which registry the build step uses"
    )
    release_step = command(
        "release-step", "azure:cmd_release_step", "run one step of the Azure release (what the release pipelines run)"
    )
    release_step.add_argument(
        "step", choices=LazyChoices("amlops.app.release_steps", "STEPS"), metavar="STEP", help="a release step"
    )
    release_step.add_argument(
        "--artifact-dir",
        type=Path,
        default=Path(".."),
        help="the build artifact holding release.json (default: .., the release runs in its release/ folder)",
    )
    release_step.add_argument(
        "--redeploy", action="store_true", help="check: release the version even if the build did not register it"
    )
    serve = command("serve", "serving:cmd_serve", "serve the production model on the local endpoint until Ctrl-C")
    serve.add_argument("--version", default=None, help="registered version (default: production)")
    serve.add_argument("--config", type=Path, default=None, help="deployment config (computeType: local)")
    smoke = command("smoke", "serving:cmd_smoke", "smoke-test a running local endpoint")
    smoke.add_argument("--name", default=LOCAL_ENDPOINT, help="local endpoint (default: %(default)s)")
    deploy = command(
        "deploy", "serving:cmd_deploy", "deploy production (or --version) to a local endpoint left running"
    )
    deploy.add_argument("--version", default=None, help="registered version (default: production)")
    deploy.add_argument("--config", type=Path, default=None, help="deployment config (computeType: local)")
    deploy.add_argument("--name", default=LOCAL_ENDPOINT, help="local endpoint (default: %(default)s)")
    undeploy = command("undeploy", "serving:cmd_undeploy", "stop a local endpoint started by deploy or a notebook")
    undeploy.add_argument("--name", default=LOCAL_ENDPOINT, help="local endpoint (default: %(default)s)")
    release_cli = command(
        "release",
        "serving:cmd_release",
        "local release: a candidate to pre-production and its smoke test; --approve: to production, then "
        "promote; --rollback: back to the version production replaced",
    )
    release_cli.add_argument("--version", default=None, help="candidate (default: the newest registered version)")
    steps = release_cli.add_mutually_exclusive_group()
    steps.add_argument("--approve", action="store_true", help="release what pre-production serves to production")
    steps.add_argument("--rollback", action="store_true", help="put the version production replaced back")
    release_cli.add_argument("--to", default=None, help="--rollback: the version to go back to")
    release_cli.add_argument(
        "--config", type=Path, default=None, help="production's deployment config (default: deploymentConfig.local.yml)"
    )
    lifecycle = command(
        "run", "serving:cmd_run", "pipeline, local deploy of the candidate, smoke test, promote, summary"
    )
    lifecycle.add_argument("--data", type=Path, default=None, help="training CSV (default: the data snapshot)")
    lifecycle.add_argument("--config", type=Path, default=None, help="deployment config (computeType: local)")
    register_commands(commands)
    return cli


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

    def command(name: str, handler: str, help_text: str, *, workspace: bool = True) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help_text, description=_unescaped(help_text))
        sub.set_defaults(handler=handler)
        if workspace:
            _workspace_option(sub)
        return sub

    render = command(
        "render", "azure:cmd_render", "write the v2 YAML files into build/azureml (offline)", workspace=False
    )
    render.add_argument("--out", type=Path, default=None, help="output folder (default: build/azureml)")
    render.add_argument("--data", type=Path, default=None, help="training CSV (default: the snapshot)")
    render.add_argument("--model-version", default=None, help="model version the deployments serve (default: latest)")
    render.add_argument("--deployment-name", default="blue", help="name of the rendered deployments")
    render.add_argument("--cron", default="0 6 * * 1", help="schedule of the published pipeline, UTC")

    command("check", "azure:cmd_check", "check the workspace, the credentials and the computes the files name")

    submit = command("submit", "azure:cmd_submit", "submit the training pipeline and follow it until it completes")
    submit.add_argument("--job", choices=("pipeline", "train"), default="pipeline", help="train: sklearn.runconfig")
    submit.add_argument("--data", default=None, help="training CSV or azureml:NAME:VERSION|@latest (default: snapshot)")
    submit.add_argument("--no-wait", action="store_true", help="return once submitted")
    submit.add_argument("--stream-logs", action="store_true", help="stream the job's logs while waiting")
    submit.add_argument("--poll-seconds", type=float, default=15.0, help="seconds between status checks")
    submit.add_argument("--timeout", type=float, default=None, help="seconds to wait before failing")

    publish = command(
        "publish", "azure:cmd_publish", "register the pipeline as a pipeline component (+ disabled schedule)"
    )
    publish.add_argument("--version", default=None, help="component version (default: UTC timestamp)")
    publish.add_argument("--schedule", default=None, metavar="CRON", help="also create a disabled schedule (UTC)")
    publish.add_argument(
        "--data", default=None, help="data of scheduled runs: a CSV, or azureml:NAME:VERSION|@latest (pinned)"
    )

    data = command(
        "register-data",
        "azure:cmd_register_data",
        "register a CSV as the next version of the training data asset; the schedule moves to it",
    )
    data.add_argument("path", type=Path, help="the CSV file")
    data.add_argument("--name", default=None, help="data asset name (default: <model name>-training-data)")
    data.add_argument("--description", default="", help="what this version holds")
    data.add_argument("--keep-schedule", action="store_true", help="leave the training schedule on its data")

    register = command(
        "register-model", "azure:cmd_register_model", "register a pipeline job's model with lineage tags"
    )
    register.add_argument("--job", required=True, help="name of a completed training pipeline job")
    register.add_argument("--force", action="store_true", help="register even if the job's decision was not to")

    deploy = command("deploy", "azure:cmd_deploy", "release a model version as a new deployment (blue/green)")
    _stage_option(deploy)
    deploy.add_argument("--version", default=None, help="registered model version (default: latest)")
    deploy.add_argument("--config", type=Path, default=None, help="deployment config (default: the stage's)")
    deploy.add_argument("--deployment-name", default=None, help="default: v<version>-<timestamp>")
    deploy.add_argument("--traffic-steps", type=_steps, default=[100], help="e.g. 10,50,100 (default: 100)")
    deploy.add_argument(
        "--mirror",
        type=int,
        default=0,
        metavar="PERCENT",
        help="mirror live traffic first (0-50; managed endpoints only: not --stage prod)",
    )
    deploy.add_argument("--mirror-seconds", type=float, default=300.0, help="how long to mirror")
    deploy.add_argument("--step-seconds", type=float, default=60.0, help="how long to watch each traffic step")
    deploy.add_argument("--keep-old", action="store_true", help="keep the old deployment (at 0%%) for rollback")
    deploy.add_argument("--keep-failed", action="store_true", help="keep a failed new deployment for its logs")

    rollback = command("rollback", "azure:cmd_rollback", "send all traffic back to the previous deployment")
    _stage_option(rollback)
    rollback.add_argument("--to", default=None, help="deployment to return to (default: the recorded previous one)")
    rollback.add_argument("--no-smoke", action="store_true", help="skip the smoke test afterwards")

    smoke = command("smoke", "azure:cmd_smoke", "smoke-test a stage's endpoint through its URL and key")
    _stage_option(smoke)

    cleanup = command(
        "cleanup", "azure:cmd_cleanup", "delete the deployments a stage keeps at 0%% traffic (after a release)"
    )
    _stage_option(cleanup)

    promote = command("promote", "azure:cmd_promote", "mark a model version as production in the workspace registry")
    promote.add_argument("--version", required=True, help="registered model version")

    endpoint = command("endpoint", "azure:cmd_endpoint", "show an endpoint's URL, traffic and deployments")
    _stage_option(endpoint)
    endpoint.add_argument("--show-keys", action="store_true", help="print the keys (stdout only, never logged)")
    endpoint.add_argument("--json", action="store_true", help="print JSON instead of a table")


def register_commands(commands: argparse._SubParsersAction) -> None:
    """Add ``azure`` and its commands to the ``python -m amlops`` subparsers."""
    azure = commands.add_parser(
        "azure",
        help="the lifecycle on Azure ML v2 (render, check, submit, publish, register-data, register-model, deploy, "
        "smoke, rollback, promote, cleanup, endpoint)",
        description="The lifecycle on Azure ML v2. Only `render` works offline.",
    )
    add_subcommands(azure.add_subparsers(dest="azure_command", required=True, metavar="AZURE_COMMAND"))
