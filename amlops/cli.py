"""``python -m amlops <command>``: one command per lifecycle stage.

The Makefile, the notebooks and the CI/CD pipelines all call these commands, so every stage can be run
and tested on a laptop exactly as automation runs it.
"""

from __future__ import annotations

import argparse
import functools
import json
import logging
import os
import shlex
import signal
import sys
import tempfile
import threading
from collections.abc import Callable
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

from amlops.azure.cli import register_commands as register_azure_commands
from amlops.build import STEPS as BUILD_STEPS
from amlops.pipeline import DEFAULT_PIPELINE_NAME
from amlops.settings import LOCAL_ENDPOINT, ProjectSettings

log = logging.getLogger("amlops")

#: Exit codes: 0 success, 1 unexpected failure, 2 bad input (data, config, arguments; also a refused action, such
#: as deploying or promoting a retired version), 3 smoke test failed, 4 ``models check`` found the model degraded.
EXIT_BAD_INPUT = 2
EXIT_SMOKE_FAILED = 3
EXIT_DEGRADED = 4
#: Endpoint name of the short-lived deployment `run` smoke-tests (`serve`/`deploy` use "local").
RUN_ENDPOINT = "run"


def setup_logging(verbose: bool = False) -> None:
    """Progress on stderr, one line per event."""
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    logging.getLogger("matplotlib").setLevel(logging.WARNING)


def run_step(main: Callable[[list[str] | None], int], argv: list[str] | None = None) -> int:
    """Run a step's ``main`` with logging set up and expected failures turned into clear exit codes."""
    setup_logging()
    return guarded(lambda: main(argv))


def guarded(action: Callable[[], int]) -> int:
    """Run ``action``; known failures print their message (no traceback) and return a non-zero code."""
    from pydantic import ValidationError

    from amlops.build import BuildFailure
    from amlops.config import ConfigError
    from amlops.data import DataValidationError
    from amlops.drift import DataDriftError
    from amlops.migrate import ArchiveError
    from amlops.pipeline import PublishedRunFailed
    from amlops.serving.client import ScoringError
    from amlops.serving.local import EndpointError
    from amlops.serving.smoke import SmokeTestFailure
    from amlops.settings import explain_settings_error

    try:
        return action()
    except ValidationError as error:
        log.error("%s", explain_settings_error(error))
        return EXIT_BAD_INPUT
    except (
        DataValidationError,
        DataDriftError,
        ConfigError,
        ArchiveError,
        FileNotFoundError,
        LookupError,
    ) as error:
        log.error("%s", error)
        return EXIT_BAD_INPUT
    except BuildFailure as error:
        log.error("build failed: %s", error)
        return 1
    except PublishedRunFailed as error:
        log.error("%s", error)
        return error.exit_code
    except (SmokeTestFailure, ScoringError) as error:
        log.error("smoke test failed: %s", error)
        return EXIT_SMOKE_FAILED
    except EndpointError as error:
        log.error("%s", error)
        return 1


# --- commands -----------------------------------------------------------------------------------------


def cmd_snapshot(args: argparse.Namespace) -> int:
    """Write the data snapshot CSV and its sha256."""
    from amlops.data import write_snapshot

    path = args.out or ProjectSettings().data_snapshot
    log.info("wrote %s (sha256 %s)", path, write_snapshot(path))
    return 0


def cmd_validate(args: argparse.Namespace) -> int:
    """Validate a data file against the schema."""
    from amlops import data
    from amlops.settings import DataSettings

    path = args.data or ProjectSettings().data_snapshot
    frame = data.validate(data.load_csv(path), min_rows=DataSettings().min_rows, source=str(path))
    log.info("%s: %d rows, %d columns, valid (sha256 %s)", path, len(frame), frame.shape[1], data.sha256_file(path))
    return 0


def _target(args: argparse.Namespace) -> str:
    """``--target``; else ``azure`` when ``--workspace-config`` names a workspace; else ``AMLOPS_TARGET``.

    A studio ``config.json`` chooses Azure only when the command names it: one lying in the project root names
    the default workspace but leaves the target local (said once), so ``make run`` never turns into Azure spend.
    """
    settings = ProjectSettings()
    if args.workspace_config and args.target == "local":
        raise LookupError(
            f"--workspace-config {args.workspace_config} names an Azure ML workspace, and --target is local: "
            "drop one of them"
        )
    target = args.target or ("azure" if args.workspace_config else settings.target)
    if target == "azure" and args.workspace_config:
        os.environ["AMLOPS_AZURE_WORKSPACE_CONFIG"] = str(args.workspace_config)
    if target == "local" and not args.target and "target" not in settings.model_fields_set:
        _say_local_despite_workspace_config(settings.root)
    return target


def _say_local_despite_workspace_config(root: Path) -> None:
    """A studio ``config.json`` names a workspace but does not choose the target: say so, once per process.

    Default-local is the promise of ``make run`` and ``make test``: a ``config.json`` downloaded into the clone
    (studio offers it on every workspace page) must not start spending on Azure without an explicit choice.
    """
    from amlops.azure.connection import CONFIG_FILES

    found = next((root / name for name in CONFIG_FILES if (root / name).is_file()), None)
    if found:
        _say_local_once(found)


@functools.cache
def _say_local_once(workspace_config: Path) -> None:
    log.info(
        "%s names an Azure ML workspace; this runs locally. Pass --target azure or --workspace-config PATH (or "
        "set AMLOPS_TARGET=azure) to use the workspace.",
        workspace_config,
    )


def cmd_pipeline_run(args: argparse.Namespace) -> int:
    """Run prep → train → evaluate → register (or a published version with --published), here or on Azure ML."""
    from amlops import workflow

    overrides = {k: v for k, v in (("data", args.data), ("alpha", args.alpha)) if v is not None}
    if not args.promote:
        overrides["promote"] = False
    if args.published:
        name, _, version = args.published.partition(":")
        if version and not version.isdigit():
            raise LookupError(f"--published {args.published}: {version!r} is not a version number")
        overrides |= {"name": name, "version": int(version) if version else None}
        outcome = workflow.run_published_pipeline(_target(args), **overrides)
    else:
        outcome = workflow.run_pipeline(_target(args), **overrides)
    sys.stdout.write(json.dumps(outcome, indent=2, default=str) + "\n")
    return 0


def cmd_pipeline_publish(args: argparse.Namespace) -> int:
    """Publish the pipeline: a versioned local definition, or an Azure ML pipeline component."""
    from amlops import workflow

    parameters = {k: v for k, v in (("data", args.data), ("alpha", args.alpha)) if v is not None}
    target = _target(args)
    published = workflow.publish_pipeline(target, name=args.name, description=args.description, **parameters)
    sys.stdout.write(json.dumps(published, indent=2, default=str) + "\n")
    return 0


def cmd_pipeline_list(args: argparse.Namespace) -> int:
    """List the published versions of a pipeline."""
    from amlops import pipeline

    versions = [asdict(v) for v in pipeline.published_versions(args.name)]
    sys.stdout.write(json.dumps(versions, indent=2) + "\n")
    return 0


def cmd_models(args: argparse.Namespace) -> int:
    """List registered versions with their metrics and which one is in production (local, or ``--target azure``)."""
    registry, _ = _governed(args)
    versions = registry.versions()
    if args.json:
        sys.stdout.write(
            json.dumps(
                [
                    {
                        "version": v.version,
                        "production": v.in_production,
                        "retired": v.retired,
                        "metrics": v.metrics,
                        "tags": v.tags,
                    }
                    for v in versions
                ],
                indent=2,
            )
            + "\n"
        )
        return 0
    if not versions:
        sys.stdout.write(f"no versions of {registry.name} registered yet\n")
        return 0
    sys.stdout.write(
        f"{'version':>7}  {'prod':4}  {'rmse':>8}  {'mae':>8}  {'r2':>7}  {'data sha256':12}  {'git':11}  decision\n"
    )
    for v in versions:
        m = v.metrics
        sys.stdout.write(
            f"{v.version:>7}  {'*' if v.in_production else '':4}  {m.get('rmse', float('nan')):8.3f}  "
            f"{m.get('mae', float('nan')):8.3f}  {m.get('r2', float('nan')):7.4f}  "
            f"{v.tags.get('data_sha256', '')[:12]:12}  {v.tags.get('git_commit', '')[:11]:11}  "
            f"{v.tags.get('decision', '')}{'  RETIRED' if v.retired else ''}\n"
        )
    return 0


def _model_ref(text: str | None) -> tuple[str | None, str | None]:
    """``NAME:VERSION``, ``NAME``, ``VERSION``, ``NAME:production`` -> (name or None, version or None)."""
    if not text:
        return None, None
    if ":" in text:
        name, _, version = text.rpartition(":")
        return name or None, None if version in ("", "production") else version
    if text == "production":
        return None, None
    return (None, text) if text.isdigit() else (text, None)


def _governed(args: argparse.Namespace, name: str | None = None):
    """The registry of ``name`` (default: the project's model): local, or the workspace's with ``--target azure``.

    Returns:
        The registry and, for Azure, the ``MLClient`` (else ``None``).
    """
    from amlops.registry import Registry

    settings = ProjectSettings()
    if name:
        settings = settings.model_copy(update={"model_name": name})
    if _target(args) == "azure":
        from amlops.azure.connection import connect
        from amlops.governance import AzureRegistry

        client = connect(args.workspace_config)
        return AzureRegistry(client, settings=settings), client
    return Registry(settings), None


def cmd_models_show(args: argparse.Namespace) -> int:
    """A version's metrics, lineage, retirement, last efficacy check and deployments (default: production)."""
    from amlops import governance

    name, version = _model_ref(args.model)
    registry, client = _governed(args, name)
    described = governance.describe(registry, governance.resolve(registry, version), client=client)
    if args.json:
        sys.stdout.write(json.dumps(described, indent=2, default=str) + "\n")
    else:
        sys.stdout.write(governance.render_description(described))
    return 0


def cmd_models_retire(args: argparse.Namespace) -> int:
    """Mark a version as not to be served; with --replace, redeploy production wherever it is live."""
    from amlops import governance

    name, version = _model_ref(args.model)
    registry, client = _governed(args, name)
    target = governance.resolve(registry, version)
    result = governance.retire(
        registry,
        target.version,
        args.reason,
        replacement=args.replacement,
        replace=args.replace,
        config=args.config,
        client=client,
        say=lambda line: sys.stdout.write(line + "\n"),
    )
    for record in result.replaced:
        sys.stdout.write(
            f"replaced: {record.target} endpoint {record.endpoint} serves v{result.replaced_by} at {record.url}\n"
        )
    still = result.still_live
    for record in still:
        sys.stdout.write(f"STILL LIVE: {record.target} endpoint {record.endpoint} ({record.deployment}) {record.url}\n")
    if still:
        sys.stdout.write(
            "the retired version keeps serving there until replaced: rerun with --replace, or undeploy it\n"
        )
    return 0


def cmd_models_unretire(args: argparse.Namespace) -> int:
    """Undo a retirement (recorded with who and when)."""
    from amlops import governance

    name, version = _model_ref(args.model)
    registry, _ = _governed(args, name)
    target = registry.get(version) if version else governance.resolve(registry, None)
    governance.unretire(registry, target.version, args.reason)
    sys.stdout.write(f"{target.name} v{target.version} may be deployed and promoted again\n")
    return 0


def cmd_models_check(args: argparse.Namespace) -> int:
    """Score the production model on newer labelled data; exit 4 when degraded (and retrain if asked)."""
    from amlops import governance
    from amlops.settings import EfficacySettings

    rules = EfficacySettings()
    registry, client = _governed(args)
    with tempfile.TemporaryDirectory(prefix="amlops-check-data-") as scratch:
        data = args.data
        if str(data).startswith("azureml:"):
            if client is None:
                raise LookupError(f"--data {data}: an Azure ML data asset needs --target azure")
            from amlops.azure.operations import download_data_asset

            data = download_data_asset(client, str(data), Path(scratch))
        report = governance.check_efficacy(registry, data, rules=rules)
        retrained = None
        if report.degraded and (args.retrain or rules.retrain):
            log.info("degraded: starting the training pipeline on %s", args.data)
            target = "azure" if client is not None else "local"
            retrained = governance.retrain(data, target=target, client=client)
    if args.json:
        sys.stdout.write(json.dumps(asdict(report) | {"retrained": retrained}, indent=2) + "\n")
    else:
        sys.stdout.write(governance.render_report(report))
        if retrained:
            sys.stdout.write(f"retraining: {json.dumps(retrained)}\n")
    return EXIT_DEGRADED if report.degraded else 0


def cmd_endpoints_list(args: argparse.Namespace) -> int:
    """Each endpoint with the version it serves (local: running endpoints and records; azure: the stages)."""
    from amlops import governance

    registry, client = _governed(args)
    if client is not None:
        rows = governance.azure_endpoints(client, registry)
    else:
        rows = governance.endpoints(registry=registry)
    if args.json:
        sys.stdout.write(json.dumps(rows, indent=2) + "\n")
    else:
        sys.stdout.write(governance.render_endpoints(rows))
    return 0


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


def _migration_registry(args: argparse.Namespace) -> Any:
    """``--registry-uri`` (any MLflow registry), the workspace's with ``--target azure``, else the project's."""
    from amlops.registry import Registry

    settings = ProjectSettings()
    if _target(args) == "azure":
        if args.registry_uri:
            raise LookupError(
                "--registry-uri names an MLflow registry; with --target azure the workspace's registry is used "
                "(choose the workspace with --workspace-config)"
            )
        return _governed(args)[0]
    return Registry(settings.model_copy(update={"tracking_uri": args.registry_uri}) if args.registry_uri else settings)


def cmd_models_export(args: argparse.Namespace) -> int:
    """Export a registered version to an archive."""
    from amlops.migrate import export_version

    registry = _migration_registry(args)
    version = args.version.rpartition(":")[2]
    if version == "production":
        current = registry.production()
        if current is None:
            raise LookupError(f"no version of {registry.name} is in production")
        version = current.version
    export_version(registry, version, args.out)
    sys.stdout.write(f"{args.out}\n")
    return 0


def cmd_models_promote(args: argparse.Namespace) -> int:
    """Move the production marker to a version (the project's registry, or the workspace's with --target azure)."""
    registry, _ = _governed(args)
    version = registry.get(args.version.rpartition(":")[2])
    registry.promote(version.version)
    return 0


def cmd_build(args: argparse.Namespace) -> int:
    """Run one build step, or all of them in order (the local dry run of the CI build)."""
    from amlops import build

    build.run(args.step, build.BuildContext(args.artifact_dir.resolve(), target=args.target))
    return 0


def cmd_models_import(args: argparse.Namespace) -> int:
    """Import an exported archive into a registry."""
    from amlops.migrate import import_archive

    imported = import_archive(args.archive, _migration_registry(args), promote=args.promote)
    sys.stdout.write(json.dumps(asdict(imported), indent=2) + "\n")
    return 0


def cmd_smoke(args: argparse.Namespace) -> int:
    """Smoke-test a running local endpoint."""
    from amlops.serving.local import read_state
    from amlops.serving.smoke import smoke_local

    settings = ProjectSettings()
    smoke_local(read_state(settings.endpoints_dir, args.name), settings.data_snapshot)
    return 0


def cmd_deploy(args: argparse.Namespace) -> int:
    """Deploy the production model (or --version) to a local endpoint left running in the background."""
    from amlops import governance

    state, _ = governance.deploy_local(args.version, name=args.name, config=args.config)
    sys.stdout.write(json.dumps(asdict(state), indent=2) + "\n")
    return 0


def _v(version: str | None) -> str:
    return f"v{version}" if version else "none"


def cmd_release(args: argparse.Namespace) -> int:
    """The local release (:mod:`amlops.release`): pre-production, or with --approve production, or --rollback."""
    from amlops import release

    if ProjectSettings().target == "azure":
        raise LookupError(
            "`release` releases to local endpoints, and AMLOPS_TARGET is azure: on Azure ML the release pipeline "
            "runs `azure deploy --stage preprod|prod` with its approval (pipelines/README.md)"
        )
    if args.to and not args.rollback:
        raise LookupError("--to names the version --rollback goes back to; use --version to choose a candidate")
    if args.rollback:
        done = release.rollback(args.to, config=args.config)
    elif args.approve:
        done = release.approve(args.version, config=args.config)
    else:
        done = release.to_preproduction(args.version, config=args.config)
    smoke = done.smoke
    checked = (
        f"smoke test passed: {smoke.rows} rows equal the model's predictions (max |error| {smoke.max_abs_error:.1e})"
    )
    if done.stage == "preprod":
        sys.stdout.write(
            f"v{done.version} serves pre-production at {done.url}; {checked}\n"
            f"production stays {_v(done.previous_production)}. Try it, then approve:\n"
            f"  python -m amlops release --approve --version {done.version}\n"
        )
    elif done.stage == "rollback":
        sys.stdout.write(
            f"rolled back: v{done.version} serves production at {done.url} and is the production version again "
            f"(was {_v(done.previous_production)}); {checked}\n"
        )
    else:
        sys.stdout.write(
            f"v{done.version} serves production at {done.url} and is the production version "
            f"(was {_v(done.previous_production)}); {checked}\n"
            "if it misbehaves: python -m amlops release --rollback\n"
        )
    return 0


def cmd_undeploy(args: argparse.Namespace) -> int:
    """Stop a local endpoint started by ``deploy`` or a notebook."""
    from amlops import governance

    if governance.undeploy_local(args.name) is None:
        log.info("no local endpoint named %r was running", args.name)
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    """Serve the production model (or --version) in the foreground until Ctrl-C, smoke-tested first."""
    from amlops import governance
    from amlops.serving.deploy import local_endpoint

    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    endpoint = local_endpoint(args.version, deployment_config=args.config)
    with governance.serving_local(endpoint, config=args.config, smoke=True) as (state, smoke):
        sys.stdout.write(
            f"serving {state.model_name} v{state.model_version} at {state.scoring_uri} "
            f"(smoke test passed: {smoke.rows} rows equal the model's predictions)\n"
            f"try:\n  {curl_example(state.scoring_uri)}\nCtrl-C stops it.\n"
        )
        sys.stdout.flush()
        while not stop.wait(0.5):
            if endpoint.process.poll() is not None:
                log.error("the server exited with code %s; see %s", endpoint.process.returncode, state.log_file)
                return 1
    return 0


def curl_example(scoring_uri: str) -> str:
    """A copy-pasteable request for the endpoint."""
    body = json.dumps({"data": [[59.0, 2.0, 32.1, 101.0, 157.0, 93.2, 38.0, 4.0, 4.8598, 87.0]]})
    return f"curl -s -X POST {scoring_uri} -H 'Content-Type: application/json' -d {shlex.quote(body)}"


def cmd_run(args: argparse.Namespace) -> int:
    """The whole local lifecycle: pipeline, deploy the candidate locally, smoke test, promote, summary, stop.

    The pipeline registers a candidate without promoting it; the candidate is promoted only after it served and
    passed its smoke test (a failed deploy or smoke test leaves production as it was). Running ``make run`` is the
    approval; ``release`` asks for it explicitly.
    """
    from amlops import governance, pipeline
    from amlops.registry import Registry
    from amlops.serving.deploy import local_deployment_config, local_endpoint
    from amlops.steps import register

    settings = ProjectSettings()
    result = pipeline.run(args.data, promote=False)
    candidate = result.registration["registered_version"]
    version = candidate or result.registration["production_version"]
    if version is None:
        log.error(
            "the gate %sed the candidate and no version is in production, so there is nothing to deploy: %s",
            result.decision.outcome,
            "; ".join(result.decision.reasons),
        )
        return EXIT_BAD_INPUT
    serve_config = local_deployment_config(settings, args.config)
    # Its own name and any free port: never collides with a `make serve` endpoint left running.
    endpoint = local_endpoint(version, settings=settings, deployment_config=args.config, name=RUN_ENDPOINT, port=0)
    with governance.serving_local(endpoint, settings=settings, config=args.config, smoke=True) as (state, smoke):
        if candidate:
            folder = result.folder
            decision = register.promote_candidate(candidate, result.decision, folder / "train", folder / "prep")
            production = Registry(settings).production()
            result = replace(
                result,
                decision=decision,
                registration=result.registration | {"production_version": production.version if production else None},
            )
        sys.stdout.write(summary(result, state, smoke, serve_config))
        sys.stdout.flush()
    log.info("endpoint stopped")
    return 0


def _version_change(registration: dict) -> str:
    registered = registration["registered_version"]
    if not registered:
        return "  (unchanged)"
    if registered == registration["production_version"]:
        return f"  (new: v{registered}, promoted after its smoke test)"
    return f"  (v{registered} registered, not promoted: production moved and the gate was applied again)"


def summary(result, state, smoke, serve_config) -> str:
    """What ``make run`` prints at the end."""
    decision = result.decision
    registration = result.registration
    serve_uri = f"http://{serve_config.host}:{serve_config.port or 'PORT'}/score"
    metrics = decision.candidate
    lines = [
        "",
        "=" * 78,
        f"model        {registration['model_name']}  production version {registration['production_version']}"
        + _version_change(registration),
        f"candidate    rmse {metrics['rmse']:.3f}  mae {metrics['mae']:.3f}  r2 {metrics['r2']:.4f}"
        f"  (holdout, {result.fingerprint['test_rows']} rows)",
    ]
    if decision.production:
        p = decision.production
        lines.append(
            f"production   rmse {p['rmse']:.3f}  mae {p['mae']:.3f}  r2 {p['r2']:.4f}"
            f"  (v{decision.production_version}, same holdout)"
        )
    lines += [f"gate         {decision.outcome.upper()}"] + [f"             - {r}" for r in decision.reasons]
    lines += [
        f"data         {result.fingerprint['source']}  sha256 {result.fingerprint['sha256'][:16]}…",
        f"pipeline     MLflow run {result.run_id}  outputs in {result.folder}",
        f"endpoint     {state.scoring_uri}  (served v{state.model_version}; stopped now)",
        f"smoke test   passed: {smoke.rows} rows equal the model's predictions (max |error| "
        f"{smoke.max_abs_error:.1e}); bad request -> HTTP {smoke.bad_request_status}",
        "",
        "call it: `make serve`, then",
        f"  {curl_example(serve_uri)}",
        f"browse runs and versions:  .venv/bin/mlflow ui --backend-store-uri {ProjectSettings().resolved_tracking_uri}",
        "=" * 78,
        "",
    ]
    return "\n".join(lines)


def parser() -> argparse.ArgumentParser:
    """The command-line interface."""
    cli = argparse.ArgumentParser(
        prog="python -m amlops", description="One command per lifecycle stage, run locally (the default)."
    )
    cli.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    commands = cli.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, handler: Callable, help_text: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help_text, description=help_text)
        sub.set_defaults(handler=handler)
        return sub

    snapshot = command("snapshot", cmd_snapshot, "write data/diabetes.csv and its sha256 from scikit-learn")
    snapshot.add_argument("--out", type=Path, default=None)
    validate = command("validate", cmd_validate, "check a data file against the schema (data quality)")
    validate.add_argument("--data", type=Path, default=None)
    pipeline_cli = commands.add_parser("pipeline", help="run, publish or list the training pipeline")
    pipeline_commands = pipeline_cli.add_subparsers(dest="pipeline_command", required=True, metavar="ACTION")
    run_pipeline = pipeline_commands.add_parser("run", help="run prep → train → evaluate → register locally")
    run_pipeline.set_defaults(handler=cmd_pipeline_run)
    run_pipeline.add_argument("--data", type=Path, default=None, help="CSV to train on (default: the snapshot)")
    run_pipeline.add_argument("--alpha", type=float, default=None, help="override sklearn.runconfig's --alpha")
    run_pipeline.add_argument("--no-promote", dest="promote", action="store_false")
    run_pipeline.add_argument("--published", default=None, metavar="NAME[:VERSION]", help="run a published version")
    _target_options(run_pipeline)
    publish = pipeline_commands.add_parser("publish", help="publish the pipeline as a named, versioned definition")
    publish.set_defaults(handler=cmd_pipeline_publish)
    publish.add_argument(
        "--name", default=None, help=f"local: any (default {DEFAULT_PIPELINE_NAME}); Azure ML: the project's only"
    )
    publish.add_argument("--data", default=None, help="default data path (relative to the repository)")
    publish.add_argument("--alpha", type=float, default=None, help="default alpha")
    publish.add_argument("--description", default="")
    _target_options(publish)
    listing = pipeline_commands.add_parser("list", help="list a pipeline's published versions")
    listing.set_defaults(handler=cmd_pipeline_list)
    listing.add_argument("--name", default=DEFAULT_PIPELINE_NAME)
    models_cli = commands.add_parser(
        "models", help="list, show, export, import, promote, retire or check registered model versions"
    )
    models_commands = models_cli.add_subparsers(dest="models_command", required=True, metavar="ACTION")
    models = models_commands.add_parser("list", help="registered versions, their metrics and the production one")
    models.set_defaults(handler=cmd_models)
    models.add_argument("--json", action="store_true")
    _target_options(models)
    export = models_commands.add_parser("export", help="write a version (files, metrics, lineage) to an archive")
    export.set_defaults(handler=cmd_models_export)
    export.add_argument("version", help="version number, NAME:VERSION, or 'production'")
    export.add_argument("--out", type=Path, required=True, help="archive to write (.tar.gz)")
    export.add_argument("--registry-uri", default=None, help="source MLflow registry (default: the project's)")
    _target_options(export)
    promote = models_commands.add_parser("promote", help="move the production marker to a version (after approval)")
    promote.set_defaults(handler=cmd_models_promote)
    promote.add_argument("version", help="version number or NAME:VERSION")
    _target_options(promote)
    import_ = models_commands.add_parser("import", help="verify an exported archive and register it")
    import_.set_defaults(handler=cmd_models_import)
    import_.add_argument("archive", type=Path)
    import_.add_argument("--registry-uri", default=None, help="target MLflow registry (default: the project's)")
    import_.add_argument("--promote", action="store_true", help="also move the target's production marker")
    _target_options(import_)
    show = models_commands.add_parser("show", help="a version's metrics, lineage and live deployments")
    show.set_defaults(handler=cmd_models_show)
    show.add_argument("model", nargs="?", default=None, help="NAME[:VERSION] or VERSION (default: production)")
    show.add_argument("--json", action="store_true")
    _target_options(show)
    retire = models_commands.add_parser("retire", help="mark a version as not to be served (deploys are refused)")
    retire.set_defaults(handler=cmd_models_retire)
    retire.add_argument("model", help="NAME:VERSION or VERSION")
    retire.add_argument("--reason", required=True, help="why; recorded and shown in every refusal")
    retire.add_argument("--replacement", default=None, help="needed to retire production: the version replacing it")
    retire.add_argument("--replace", action="store_true", help="redeploy production wherever the version is live")
    retire.add_argument("--config", type=Path, default=None, help="local deployment config for the replacements")
    _target_options(retire)
    unretire = models_commands.add_parser("unretire", help="undo a retirement")
    unretire.set_defaults(handler=cmd_models_unretire)
    unretire.add_argument("model", help="NAME:VERSION or VERSION")
    unretire.add_argument("--reason", default=None)
    _target_options(unretire)
    check = models_commands.add_parser(
        "check", help="score production on newer labelled data: ok (exit 0) or degraded (exit 4)"
    )
    check.set_defaults(handler=cmd_models_check)
    check.add_argument(
        "--data",
        type=Path,
        required=True,
        help="labelled CSV with the training schema, or a data asset azureml:NAME:VERSION (--target azure)",
    )
    check.add_argument("--retrain", action="store_true", help="start the training pipeline on it when degraded")
    check.add_argument("--json", action="store_true")
    _target_options(check)
    endpoints_cli = commands.add_parser("endpoints", help="endpoints and the model version each serves")
    endpoints_commands = endpoints_cli.add_subparsers(dest="endpoints_command", required=True, metavar="ACTION")
    endpoints_list = endpoints_commands.add_parser("list", help="each endpoint with the version it serves")
    endpoints_list.set_defaults(handler=cmd_endpoints_list)
    endpoints_list.add_argument("--json", action="store_true")
    _target_options(endpoints_list)
    build_cli = command("build", cmd_build, "run a CI build step, or `all` of them in order (local dry run)")
    build_cli.add_argument("step", choices=["all", *BUILD_STEPS], help="the step to run")
    build_cli.add_argument(
        "--artifact-dir",
        type=Path,
        default=Path("build/artifact"),
        help="where the build artifact is assembled ($(Build.ArtifactStagingDirectory) in CI)",
    )
    build_cli.add_argument("--target", choices=["local", "azure"], default="local")
    serve = command("serve", cmd_serve, "serve the production model on the local endpoint until Ctrl-C")
    serve.add_argument("--version", default=None, help="registered version (default: production)")
    serve.add_argument("--config", type=Path, default=None, help="deployment config (computeType: local)")
    smoke = command("smoke", cmd_smoke, "smoke-test a running local endpoint")
    smoke.add_argument("--name", default=LOCAL_ENDPOINT)
    deploy = command("deploy", cmd_deploy, "deploy production (or --version) to a local endpoint left running")
    deploy.add_argument("--version", default=None, help="registered version (default: production)")
    deploy.add_argument("--config", type=Path, default=None, help="deployment config (computeType: local)")
    deploy.add_argument("--name", default=LOCAL_ENDPOINT)
    undeploy = command("undeploy", cmd_undeploy, "stop a local endpoint started by deploy or a notebook")
    undeploy.add_argument("--name", default=LOCAL_ENDPOINT)
    release_cli = command(
        "release",
        cmd_release,
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
    lifecycle = command("run", cmd_run, "pipeline, local deploy of the candidate, smoke test, promote, summary")
    lifecycle.add_argument("--data", type=Path, default=None)
    lifecycle.add_argument("--config", type=Path, default=None, help="deployment config (computeType: local)")
    register_azure_commands(commands)
    return cli


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m amlops``."""
    args = parser().parse_args(argv)
    setup_logging(args.verbose)
    return guarded(lambda: args.handler(args))
