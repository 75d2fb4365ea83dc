"""The serving commands of ``python -m amlops``: run, serve, deploy, undeploy, smoke, release."""

from __future__ import annotations

import argparse
import json
import logging
import os
import shlex
import signal
import sys
import threading
from dataclasses import asdict, replace

from amlops.app import release_steps
from amlops.core.errors import EXIT_BAD_INPUT
from amlops.core.settings import ProjectSettings
from amlops.lifecycle import local_deploy, pipeline, release
from amlops.ml.metrics import line as metrics_line
from amlops.registry.mlflow import Registry
from amlops.serving.deploy import local_deployment_config, local_endpoint
from amlops.serving.local import read_state
from amlops.serving.smoke import known_rows, smoke_local
from amlops.steps import register

log = logging.getLogger("amlops")

#: Endpoint name of the short-lived deployment `run` smoke-tests (`serve`/`deploy` use "local").
RUN_ENDPOINT = "run"


def cmd_smoke(args: argparse.Namespace) -> int:
    """Smoke-test a running local endpoint."""
    settings = ProjectSettings()
    smoke_local(read_state(settings.endpoints_dir, args.name), settings.data_snapshot, direct=False)
    return 0


def cmd_deploy(args: argparse.Namespace) -> int:
    """Deploy the production model (or --version) to a local endpoint left running in the background."""
    state, _ = local_deploy.deploy_local(args.version, name=args.name, config=args.config)
    sys.stdout.write(json.dumps(asdict(state), indent=2) + "\n")
    return 0


def _v(version: str | None) -> str:
    return f"v{version}" if version else "none"


def cmd_release(args: argparse.Namespace) -> int:
    """The local release (:mod:`amlops.lifecycle.release`): pre-production; --approve: production; --rollback."""
    if ProjectSettings().target == "azure":
        raise LookupError(
            "`release` releases to local endpoints, and AMLOPS_TARGET is azure: on Azure ML the release pipeline "
            "runs `azure deploy --stage preprod|prod` with its approval (pipelines/README.md)"
        )
    if args.to and not args.rollback:
        raise LookupError("--to names the version --rollback goes back to; use --version to choose a candidate")
    if args.rollback:
        done = release.rollback(args.to, config=args.config)
    else:  # the pre-production or production steps of the release's list, on local endpoints
        stage = "prod" if args.approve else "preprod"
        done = release_steps.run_local(stage, release.LocalRelease(args.version, args.config)).released
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
    if local_deploy.undeploy_local(args.name) is None:
        log.info("no local endpoint named %r was running", args.name)
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    """Serve the production model (or --version) in the foreground until Ctrl-C, smoke-tested first.

    Once it serves, this process becomes :mod:`amlops.cli.watch` (``exec``), which waits with the standard library
    only, instead of holding MLflow, scikit-learn and pandas while the server runs.
    """
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    endpoint = local_endpoint(args.version, deployment_config=args.config)
    state, smoke = local_deploy.start_serving(endpoint, config=args.config, smoke=True)
    sys.stdout.write(
        f"serving {state.model_name} v{state.model_version} at {state.scoring_uri} "
        f"(smoke test passed: {smoke.rows} rows equal the model's predictions)\n"
        f"try:\n  {curl_example(state.scoring_uri)}\n"
    )
    sys.stdout.flush()
    sys.stderr.flush()
    # Held until the watcher has its handlers (the mask survives exec): a Ctrl-C now still stops the server.
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})
    if stop.is_set():  # asked to stop while it started
        local_deploy.undeploy_local(state.name)
        return 0
    os.execv(sys.executable, [sys.executable, "-m", "amlops.cli.watch", str(endpoint.state_file)])


def curl_example(scoring_uri: str) -> str:
    """A copy-pasteable request for the endpoint: the first row of the data snapshot."""
    row = known_rows(ProjectSettings().data_snapshot, count=1).iloc[0].tolist()
    body = json.dumps({"data": [row]})
    return f"curl -s -X POST {scoring_uri} -H 'Content-Type: application/json' -d {shlex.quote(body)}"


def cmd_run(args: argparse.Namespace) -> int:
    """The whole local lifecycle: pipeline, deploy the candidate locally, smoke test, promote, summary, stop.

    The pipeline registers a candidate without promoting it; the candidate is promoted only after it served and
    passed its smoke test (a failed deploy or smoke test leaves production as it was). Running ``make run`` is the
    approval; ``release`` asks for it explicitly.
    """
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
    with local_deploy.serving_local(endpoint, settings=settings, config=args.config, smoke=True) as (state, smoke):
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
    names = ProjectSettings().contract.metric_names
    lines = [
        "",
        "=" * 78,
        f"model        {registration['model_name']}  production version {registration['production_version']}"
        + _version_change(registration),
        f"candidate    {metrics_line(metrics, names)}  (holdout, {result.fingerprint['test_rows']} rows)",
    ]
    if decision.production:
        lines.append(
            f"production   {metrics_line(decision.production, names)}  (v{decision.production_version}, same holdout)"
        )
    lines += [f"gate         {decision.outcome.upper()}"] + [f"             - {r}" for r in decision.reasons]
    store = shlex.quote(ProjectSettings().resolved_tracking_uri)  # a path with a space stays one argument
    lines += [
        f"data         {result.fingerprint['source']}  sha256 {result.fingerprint['sha256'][:16]}…",
        f"pipeline     MLflow run {result.run_id}  outputs in {result.folder}",
        f"endpoint     {state.scoring_uri}  (served v{state.model_version}; stopped now)",
        f"smoke test   passed: {smoke.rows} rows equal the model's predictions (max |error| "
        f"{smoke.max_abs_error:.1e}); bad request -> HTTP {smoke.bad_request_status}",
        "",
        "call it: `make serve`, then",
        f"  {curl_example(serve_uri)}",
        f"browse runs and versions:  .venv/bin/mlflow ui --backend-store-uri {store}",
        "=" * 78,
        "",
    ]
    return "\n".join(lines)
