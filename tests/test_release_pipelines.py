"""The release pipelines: one list of steps (``amlops/app/release_steps.py``), run by both systems, run here.

The YAML of Azure DevOps and GitHub Actions must run exactly the list, in order, each step in its stage, the
rollback only after a failure and before the clean-up. The list itself runs from the command line against the
fake workspace: a new version all the way to production, a kept one not at all, and rollbacks that only undo
what their own release moved.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from amlops.app import release_steps
from amlops.cli.main import main
from amlops.core.files import write_json
from amlops.core.names import STAGES
from amlops.core.tags import LIVE_TAG
from tests.support.checkout import REPO
from tests.support.fakes import MODEL, FakeCloud, TaggedModels
from tests.support.workspace import JobModels, fake_workspace, training_job_outputs

pytestmark = [
    pytest.mark.filterwarnings("ignore::marshmallow.warnings.ChangedInMarshmallow4Warning"),
    pytest.mark.filterwarnings("ignore::marshmallow.warnings.RemovedInMarshmallow4Warning"),
]

GITHUB = REPO / ".github"
PIPELINES = REPO / "pipelines"
#: GitHub's workflows and composite actions: every YAML file under .github/ but Dependabot's configuration.
WORKFLOWS_AND_ACTIONS = sorted(path for path in GITHUB.rglob("*.yml") if path != GITHUB / "dependabot.yml")
STEP_COMMAND = re.compile(r"release-step ([a-z-]+)")


def _load(path: Path) -> dict:
    return yaml.safe_load(path.read_text())


# --- the YAML runs the list ---------------------------------------------------------------------------------------


def _github_release() -> list[tuple[str, str, dict]]:
    """``(job, step name, step)`` of each release step GitHub's release workflow runs, in order."""
    jobs = _load(GITHUB / "workflows" / "release.yml")["jobs"]
    return [
        (job, found, step)
        for job, spec in jobs.items()
        for step in spec["steps"]
        for found in STEP_COMMAND.findall(step.get("run", ""))
    ]


def _azure_release() -> list[tuple[str, str, dict]]:
    """``(stage, step name, step)`` of each release step the Azure DevOps release runs, in order."""
    found = []
    for stage in _load(PIPELINES / "azure-pipelines-release.yml")["stages"]:
        for job in stage["jobs"]:
            steps = job.get("steps") or job["strategy"]["runOnce"]["deploy"]["steps"]
            for step in steps:
                if step.get("template") == "templates/release-step.yml":
                    found.append((stage["stage"], step["parameters"]["step"], step))
                found += [(stage["stage"], name, step) for name in STEP_COMMAND.findall(step.get("script", ""))]
    return found


def test_both_release_pipelines_run_the_release_steps_in_order():
    assert [name for _, name, _ in _github_release()] == list(release_steps.STEPS)
    assert [name for _, name, _ in _azure_release()] == list(release_steps.STEPS)
    template = _load(PIPELINES / "templates" / "release-step.yml")["steps"][0]
    assert template["inputs"]["inlineScript"] == ".venv/bin/python -m amlops release-step ${{ parameters.step }}"


def test_each_step_runs_in_its_stage_and_the_rollback_only_after_a_failure():
    jobs = {"preprod": "preprod", "prod": "production"}
    stages = {"preprod": "PreProduction", "prod": "Production"}
    for (job, name, step), (stage, _, azure_step) in zip(_github_release(), _azure_release(), strict=True):
        listed = release_steps.STEPS[name]
        assert (job, stage) == (jobs[listed.stage], stages[listed.stage]), name
        failure_only = step.get("if") == "failure()"
        azure_failure_only = azure_step.get("parameters", {}).get("condition") == "failed()"
        assert failure_only is azure_failure_only is listed.on_failure, name
    names = list(release_steps.STEPS)
    assert names.index("rollback") < names.index("cleanup"), "a failed clean-up must never trigger the rollback"


def test_one_job_per_release_names_the_production_environment():
    github = _load(GITHUB / "workflows" / "release.yml")["jobs"]
    assert [name for name, job in github.items() if job.get("environment") == "production"] == ["production"]
    build = _load(GITHUB / "workflows" / "build.yml")["jobs"]
    assert not [name for name, job in build.items() if job.get("environment") == "production"]
    azure = [
        job["deployment"]
        for stage in _load(PIPELINES / "azure-pipelines-release.yml")["stages"]
        for job in stage["jobs"]
        if job.get("environment") == "production"
    ]
    assert azure == ["DeployProduction"]


def test_releases_never_overlap_and_never_run_foreign_artifacts():
    github = _load(GITHUB / "workflows" / "release.yml")
    assert github["concurrency"] == {"group": "amlops-release", "cancel-in-progress": False}
    assert set(github[True]) == {"workflow_call", "workflow_dispatch"}  # YAML reads `on` as True
    assert "workflow_run" not in (GITHUB / "workflows" / "release.yml").read_text()
    dispatch_guard = github["jobs"]["preprod"]["steps"][1]
    assert dispatch_guard["if"] == "github.event_name == 'workflow_dispatch'"
    assert '"build push main"' in dispatch_guard["run"]
    azure = _load(PIPELINES / "azure-pipelines-release.yml")
    assert azure["lockBehavior"] == "runLatest"


def test_long_azure_steps_keep_their_login_and_every_job_has_a_timeout():
    for path in [*PIPELINES.rglob("*.yml")]:
        text = path.read_text()
        for task in re.findall(r"task: AzureCLI@2\n(?:.*\n)*?\s+inputs:\n((?:\s{6,}.*\n)+)", text):
            assert "keepAzSessionActive: true" in task, path.name
    for stage in _load(PIPELINES / "azure-pipelines-release.yml")["stages"]:
        assert all(job.get("timeoutInMinutes", 0) <= 60 for job in stage["jobs"])
    for name in ("build.yml", "release.yml"):
        jobs = _load(GITHUB / "workflows" / name)["jobs"].values()
        assert all(job.get("timeout-minutes") or "uses" in job for job in jobs), name


def test_actions_are_pinned_to_commits_with_their_tag_beside_them():
    uses = [
        (path.name, line.strip())
        for path in GITHUB.rglob("*.yml")
        for line in path.read_text().splitlines()
        if line.strip().startswith(("uses:", "- uses:"))
    ]
    assert uses
    for name, line in uses:
        reference = line.split("uses:", 1)[1].strip()
        if reference.startswith("./"):
            continue  # this repository's own workflow or action
        assert re.fullmatch(r"[\w.-]+/[\w.-]+@[0-9a-f]{40}  # v\d+\.\d+\.\d+", reference), (name, line)


def test_dependabot_keeps_every_pinned_action_current():
    config = _load(GITHUB / "dependabot.yml")
    [actions] = [entry for entry in config["updates"] if entry["package-ecosystem"] == "github-actions"]
    assert actions["cooldown"]["default-days"] >= 7
    scanned = [GITHUB.parent / directory.strip("/") for directory in actions["directories"]]
    # Dependabot reads a directory's .github/workflows/ and its action.yml: every file that uses an action is one.
    for path in GITHUB.rglob("*.yml"):
        if "uses:" not in path.read_text():
            continue
        covered = path.parent == GITHUB / "workflows" and GITHUB.parent in scanned
        covered = covered or (path.name == "action.yml" and any(path.parent.match(str(d)) for d in scanned))
        assert covered, f"{path.relative_to(GITHUB.parent)}: not in a directory dependabot.yml names"


def test_shared_values_agree_across_both_systems():
    python = (REPO / ".python-version").read_text().strip()
    variables = {
        item["name"]: item["value"] for item in _load(PIPELINES / "variables.yml")["variables"] if "name" in item
    }
    assert variables["pythonVersion"] == python
    text = "\n".join(path.read_text() for path in WORKFLOWS_AND_ACTIONS)
    artifacts = {
        step["with"]["name"]
        for path in WORKFLOWS_AND_ACTIONS
        for job in (_load(path).get("jobs") or {"action": {"steps": _load(path)["runs"]["steps"]}}).values()
        for step in job.get("steps", [])
        if re.search(r"actions/(upload|download)-artifact@", step.get("uses", ""))
        and step["with"]["name"] != "test-results"
    }
    assert artifacts == {variables["artifactName"]}
    assert "python-version-file: .python-version" in text
    every = text + "".join(path.read_text() for path in PIPELINES.rglob("*.yml"))
    assert "release.json" not in every  # the version is looked up by the release steps, never by the YAML


def test_zizmor_finds_nothing_of_medium_severity_or_above():
    done = subprocess.run(
        [str(Path(sys.executable).with_name("zizmor")), "--offline", "--min-severity", "medium", str(GITHUB)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]


# --- the list runs against the fake workspace ----------------------------------------------------------------------


def _artifact(folder: Path, project: Path, version: str, new_version: bool) -> Path:
    """A build artifact as ``stage-artifact`` writes it: the project in ``release/``, ``release.json`` beside it."""
    shutil.copytree(project, folder / "release")
    for stage in STAGES.values():
        shutil.copy2(REPO / stage.config_file, folder / "release" / stage.config_file)
    write_json(
        folder / "release.json",
        {
            "model_name": MODEL,
            "model_version": version,
            "new_version": new_version,
            "build_id": "118",
            "target": "azure",
        },
    )
    return folder


@pytest.fixture
def workspace(project: Path, azure_models: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    cloud = FakeCloud({k: v for k, v in azure_models.items() if k != "wrong"}, azure_models["wrong"])
    models = JobModels(TaggedModels(cloud.models), azure_models["2"])
    outputs = training_job_outputs(project, tmp_path / "job")
    client = fake_workspace(cloud, models, outputs, tmp_path / "storage", "sqlite:///unused.db")
    monkeypatch.setattr("amlops.azure.connection.connect", lambda config=None: client)
    monkeypatch.setenv("GITHUB_RUN_ID", "900")
    yield SimpleNamespace(client=client, cloud=cloud)
    cloud.close()


def _release(
    artifact: Path, monkeypatch: pytest.MonkeyPatch, *steps: str, redeploy: bool = False, failed: bool = False
) -> list[int | None]:
    """Run release steps as a pipeline job does: in ``release/``, in order; after a failure only a step that runs
    on failure. Returns each step's exit code (``None``: skipped)."""
    monkeypatch.chdir(artifact / "release")
    monkeypatch.setenv("AMLOPS_ROOT", str(artifact / "release"))
    codes: list[int | None] = []
    for step in steps:
        if failed != release_steps.STEPS[step].on_failure:
            codes.append(None)
            continue
        codes.append(main(["release-step", step, *(["--redeploy"] if redeploy and step == "check" else [])]))
        failed = failed or codes[-1] != 0
    return codes


def test_a_new_version_goes_through_both_stages(workspace, project: Path, tmp_path: Path, monkeypatch, capsys):
    artifact = _artifact(tmp_path / "artifact", project, "2", new_version=True)
    monkeypatch.setenv("GITHUB_OUTPUT", str(tmp_path / "outputs"))
    assert _release(artifact, monkeypatch, *release_steps.STEPS) == [0, 0, 0, 0, 0, 0, None, 0]
    assert (tmp_path / "outputs").read_text() == "release=true\n"
    prod = workspace.cloud.endpoints[f"{MODEL}-prod"]
    deployment = release_steps.deployment_name("2", "900")
    assert prod.traffic == {deployment: 100}
    assert [event[2] for event in workspace.cloud.events if event[0] == "endpoint"][-3:]  # traffic moved in steps
    assert workspace.client.models.tagged.tags["2"]["production"] == "true"
    assert "smoke test passed: prod serves" in capsys.readouterr().out


def test_a_kept_version_is_not_released_unless_a_redeploy_is_asked_for(
    workspace, project: Path, tmp_path: Path, monkeypatch, capsys
):
    artifact = _artifact(tmp_path / "artifact", project, "1", new_version=False)
    monkeypatch.setenv("GITHUB_OUTPUT", str(tmp_path / "outputs"))
    monkeypatch.setenv("TF_BUILD", "True")
    assert _release(artifact, monkeypatch, "check") == [0]
    out = capsys.readouterr().out
    assert "nothing to release: build 118 registered no new version" in out
    assert "##vso[task.setvariable variable=release;isOutput=true]false" in out
    assert "addbuildtag" not in out
    assert _release(artifact, monkeypatch, "check", redeploy=True) == [0]
    assert "##vso[build.addbuildtag]release" in capsys.readouterr().out
    assert (tmp_path / "outputs").read_text() == "release=false\nrelease=true\n"
    assert workspace.cloud.created_deployments == []


def test_a_failure_after_traffic_moved_rolls_back_to_what_this_release_replaced(
    workspace, project: Path, tmp_path: Path, monkeypatch, capsys
):
    _release(_artifact(tmp_path / "first", project, "1", new_version=True), monkeypatch, *release_steps.STEPS)
    monkeypatch.setenv("GITHUB_RUN_ID", "901")
    artifact = _artifact(tmp_path / "second", project, "2", new_version=True)
    assert _release(artifact, monkeypatch, "deploy-prod", "smoke-prod") == [0, 0]
    workspace.client.models.tagged.tags["2"]["retired"] = "true"  # now promote refuses: traffic has moved
    assert _release(artifact, monkeypatch, "promote", "rollback", "cleanup") == [2, 0, None]
    first, second = release_steps.deployment_name("1", "900"), release_steps.deployment_name("2", "901")
    prod = workspace.cloud.endpoints[f"{MODEL}-prod"]
    assert (prod.traffic[first], prod.traffic[second], prod.tags[LIVE_TAG]) == (100, 0, first)
    assert f"'{first}': 100, '{second}': 0}} (rolled back from ['{second}'])" in capsys.readouterr().out


def test_a_failure_before_traffic_moved_rolls_nothing_back(
    workspace, project: Path, tmp_path: Path, monkeypatch, capsys
):
    """A clean earlier release kept nothing at 0%: the old rollback failed there with a misleading message."""
    _release(_artifact(tmp_path / "first", project, "1", new_version=True), monkeypatch, *release_steps.STEPS)
    first = release_steps.deployment_name("1", "900")
    monkeypatch.setenv("GITHUB_RUN_ID", "901")
    workspace.cloud.serve_wrong_model.add(release_steps.deployment_name("2", "901"))  # its smoke test fails
    artifact = _artifact(tmp_path / "second", project, "2", new_version=True)
    codes = _release(artifact, monkeypatch, "deploy-prod", "smoke-prod", "promote", "rollback", "cleanup")
    assert codes == [3, None, None, 0, None]
    assert "traffic never moved to v2-r901-1" in capsys.readouterr().out
    assert workspace.cloud.endpoints[f"{MODEL}-prod"].traffic == {first: 100}


def test_deployment_names_are_valid_and_differ_for_each_run_and_retry():
    names = {release_steps.deployment_name("12", run, attempt) for run in ("20261207.3", "9") for attempt in "12"}
    assert len(names) == 4
    assert all(re.fullmatch(r"[A-Za-z][A-Za-z0-9-]{1,30}[A-Za-z0-9]", name) for name in names)
    assert len(release_steps.deployment_name("123", "1" * 60)) <= 32
    assert json.dumps(sorted(names))
