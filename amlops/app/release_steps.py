"""The release as one list of steps: what Azure DevOps' release pipeline and GitHub's release workflow run.

Each step is ``python -m amlops release-step <name>``, run in the build artifact's ``release/`` folder. It reads
the build's ``release.json`` (which version, whether this build registered it) itself, so no pipeline parses JSON.
``tests/test_release_pipelines.py`` checks that each pipeline runs exactly these steps, in this order, each in the
stage it belongs to, and runs them all against a fake workspace.

1. ``check``: release only a version the build registered (``new_version``), or any with ``--redeploy``; say so
   to the pipeline (a ``release`` output: ``true`` or ``false``).
2. ``deploy-preprod``, ``smoke-preprod``: the managed endpoint.
3. After the one approval of the ``production`` environment: ``deploy-prod`` beside the live deployment, traffic
   in steps, the old one kept at 0%; ``smoke-prod``; ``promote`` (the registry's production marker).
4. ``rollback``, only when a step before it failed, and only if traffic moved to this release's deployment: back
   to the deployment it replaced.
5. ``cleanup``: the replaced deployment is deleted once the release is final. It comes after ``rollback``, so a
   failed clean-up never undoes a release that passed.
"""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from amlops.app.build import RELEASE_FILE
from amlops.azure import build_steps, connection, rollout
from amlops.azure.registry import AzureRegistry
from amlops.core.errors import BadInputError
from amlops.core.files import read_json
from amlops.core.lineage import build_id
from amlops.core.settings import ProjectSettings
from amlops.lifecycle import release as local_release

log = logging.getLogger(__name__)

#: The tag on an Azure DevOps build run whose version is to be released (the release pipeline's trigger).
RELEASE_TAG = "release"
#: Production's traffic steps, in percent of the requests.
PRODUCTION_TRAFFIC_STEPS = (10, 50, 100)
#: The CI variables numbering a retried job (GitHub Actions, Azure DevOps): a retry makes a new deployment name.
ATTEMPT_VARIABLES = ("GITHUB_RUN_ATTEMPT", "SYSTEM_JOBATTEMPT")


class NothingToRelease(BadInputError):
    """The artifact cannot be released as asked (a local build's, or no version in it)."""


@dataclass(frozen=True)
class ReleaseContext:
    """What every release step needs: the build artifact, whether a redeploy was asked for, the workspace."""

    artifact_dir: Path
    redeploy: bool = False
    say: Callable[[str], None] = log.info
    client: Any = None

    @functools.cached_property
    def release(self) -> dict:
        """The build's ``release.json`` (read once)."""
        return read_json(self.artifact_dir / RELEASE_FILE)

    @property
    def version(self) -> str:
        """The model version this release ships."""
        return str(self.release["model_version"])

    @property
    def deployment(self) -> str:
        """The release's deployment name, the same in every step of one run (:func:`deployment_name`)."""
        return deployment_name(self.version, build_id() or "local", _attempt())

    def workspace(self) -> Any:
        """The ``MLClient`` (connected on first use)."""
        return self.client if self.client is not None else connection.connect()


def _attempt() -> str:
    return next((os.environ[name] for name in ATTEMPT_VARIABLES if os.environ.get(name)), "1")


def deployment_name(version: str, run: str, attempt: str = "1") -> str:
    """``v<version>-r<run>-<attempt>`` (:func:`amlops.azure.rollout.deployment_name`), new for each run and retry."""
    return rollout.deployment_name(version, f"r{run}-{attempt}")


def ci_output(name: str, value: str) -> None:
    """Hand ``name=value`` to later jobs: GitHub Actions' step outputs, Azure DevOps' output variables."""
    if os.environ.get("GITHUB_OUTPUT"):
        with open(os.environ["GITHUB_OUTPUT"], "a", encoding="utf-8") as outputs:
            outputs.write(f"{name}={value}\n")
    if os.environ.get("TF_BUILD"):
        print(f"##vso[task.setvariable variable={name};isOutput=true]{value}")  # noqa: T201 - the agent reads stdout


def check(context: ReleaseContext) -> bool:
    """Whether to release: a version this build registered, or any version with ``--redeploy``.

    A build that kept production publishes its artifact too (the same files, the version already live); releasing
    it would redeploy production for nothing, so it is not released unless asked.
    """
    release = context.release
    if release.get("target") != "azure":
        raise NothingToRelease(f"{context.artifact_dir / RELEASE_FILE}: a {release.get('target')} build's artifact")
    go = bool(release.get("new_version")) or context.redeploy
    if release.get("new_version"):
        context.say(f"release {release['model_name']}:{context.version}, registered by build {release['build_id']}")
    elif go:
        context.say(f"redeploy {release['model_name']}:{context.version} (asked for; the build registered nothing)")
    else:
        context.say(
            f"nothing to release: build {release['build_id']} registered no new version (production "
            f"{release['model_name']}:{context.version} was kept); --redeploy releases it anyway"
        )
    ci_output("release", "true" if go else "false")
    if go and os.environ.get("TF_BUILD"):
        print(f"##vso[build.addbuildtag]{RELEASE_TAG}")  # noqa: T201 - Azure DevOps' release pipeline triggers on it
    return go


def _deploy(stage: str) -> Callable[[ReleaseContext], None]:
    def deploy(context: ReleaseContext) -> None:
        production = stage == "prod"
        build_steps.release(
            stage,
            version=context.version,
            client=context.workspace(),
            deployment_name=context.deployment,
            traffic_steps=list(PRODUCTION_TRAFFIC_STEPS) if production else [100],
            keep_old=production,
            say=context.say,
        )

    return deploy


def _smoke(stage: str) -> Callable[[ReleaseContext], None]:
    def smoke(context: ReleaseContext) -> None:
        result = build_steps.smoke(stage, client=context.workspace())
        context.say(f"smoke test passed: {stage} serves {result.model_name}:{result.model_version}")

    return smoke


def promote(context: ReleaseContext) -> None:
    """Move the registry's production marker to the released version."""
    AzureRegistry(context.workspace(), ProjectSettings().model_name).promote(context.version, say=context.say)


def rollback(context: ReleaseContext) -> None:
    """Put production back on the deployment this release replaced, if traffic moved to this release's one."""
    build_steps.rollback_release("prod", context.deployment, client=context.workspace(), say=context.say)


def cleanup(context: ReleaseContext) -> None:
    """Delete the deployments production keeps at 0% (the one this release replaced)."""
    deleted = build_steps.cleanup("prod", client=context.workspace(), say=context.say)
    context.say(f"deleted {deleted or 'nothing'}")


@dataclass(frozen=True)
class Step:
    """One release step: on Azure ML, on local endpoints, the job it runs in, whether only after a failure."""

    run: Callable[[ReleaseContext], Any]
    local: Callable[[local_release.LocalRelease], Any]
    stage: str
    on_failure: bool = False


#: The release, in order; names are the CLI's (``python -m amlops release-step <name>``).
STEPS: dict[str, Step] = {
    "check": Step(check, local_release.check, "preprod"),
    "deploy-preprod": Step(_deploy("preprod"), local_release.deploy_preprod, "preprod"),
    "smoke-preprod": Step(_smoke("preprod"), local_release.smoke_preprod, "preprod"),
    "deploy-prod": Step(_deploy("prod"), local_release.deploy_prod, "prod"),
    "smoke-prod": Step(_smoke("prod"), local_release.smoke_prod, "prod"),
    "promote": Step(promote, local_release.promote, "prod"),
    "rollback": Step(rollback, local_release.undo, "prod", on_failure=True),
    "cleanup": Step(cleanup, local_release.clean_up, "prod"),
}


def run(step: str, context: ReleaseContext) -> None:
    """Run one release step."""
    log.info("release: %s (stage %s)", step, STEPS[step].stage)
    STEPS[step].run(context)


def run_local(stage: str, release: local_release.LocalRelease) -> local_release.LocalRelease:
    """One stage of the release on local endpoints (``release``, ``release --approve``): its steps, in order.

    After a failure only the steps that run on failure do; then the first failure is raised.
    """
    failure: BaseException | None = None
    for name, step in STEPS.items():
        if step.stage != stage or step.on_failure != (failure is not None):
            continue
        log.info("release: %s (local)", name)
        try:
            step.local(release)
        except BaseException as error:  # noqa: BLE001 - Ctrl-C too runs the undo step; the first is raised
            if failure is None:
                failure = error
                continue
            log.error("release: %s failed too: %s", name, error)
    if failure is not None:
        raise failure
    return release
