"""`release`: pre-production, approval, production, rollback; and nothing moves when a step fails."""

from __future__ import annotations

from pathlib import Path

import pytest

from amlops.cli.main import main
from amlops.core.errors import EXIT_BAD_INPUT, EXIT_SMOKE_FAILED
from amlops.core.settings import ProjectSettings
from amlops.lifecycle import local_deploy, pipeline
from amlops.lifecycle.release import PREPRODUCTION_ENDPOINT, PRODUCTION_ENDPOINT
from amlops.registry.mlflow import Registry
from amlops.serving.smoke import SmokeTestFailure
from tests.support.governance import logged_events, record, served_version

pytestmark = pytest.mark.integration


def serving(name: str) -> str | None:
    """The version the local endpoint ``name`` answers with, or ``None`` when it is not running."""
    state = local_deploy.running_local(ProjectSettings(), name)
    return None if state is None else served_version(state.scoring_uri)


def fail_smoke_tests(monkeypatch: pytest.MonkeyPatch) -> None:
    def failing(state, data):
        raise SmokeTestFailure(f"v{state.model_version}: predictions differ")

    monkeypatch.setattr("amlops.lifecycle.local_deploy.smoke_local", failing)  # where deploys call it


def test_a_candidate_goes_through_preproduction_and_approval_and_can_be_rolled_back(
    two_versions, free_port_config, no_servers_left, capsys
):
    config = ["--config", str(free_port_config)]
    local_deploy.deploy_local(config=free_port_config)  # production: v1 serving
    assert main(["release", *config]) == 0
    out = capsys.readouterr().out
    assert "v2 serves pre-production" in out
    assert "release --approve --version 2" in out
    assert (serving(PREPRODUCTION_ENDPOINT), serving(PRODUCTION_ENDPOINT)) == ("2", "1")
    assert two_versions.production().version == "1"  # nothing moves before approval
    assert record(two_versions, "2", endpoint=PREPRODUCTION_ENDPOINT)["outcome"] == "succeeded"

    assert main(["release", "--approve", "--version", "2", *config]) == 0
    assert "v2 serves production" in capsys.readouterr().out
    assert two_versions.production().version == "2"
    assert (serving(PREPRODUCTION_ENDPOINT), serving(PRODUCTION_ENDPOINT)) == (None, "2")
    assert [e["version"] for e in logged_events("model.promoted")][-1] == "2"

    assert main(["release", "--rollback", *config]) == 0
    assert "rolled back: v1 serves production" in capsys.readouterr().out
    assert two_versions.production().version == "1"
    assert serving(PRODUCTION_ENDPOINT) == "1"
    assert record(two_versions, "2")["outcome"] == "undeployed"


def test_a_failed_production_deploy_moves_nothing(two_versions, free_port_config, no_servers_left, monkeypatch):
    config = ["--config", str(free_port_config)]
    local_deploy.deploy_local(config=free_port_config)
    assert main(["release", *config]) == 0
    fail_smoke_tests(monkeypatch)
    assert main(["release", "--approve", *config]) == EXIT_SMOKE_FAILED
    assert two_versions.production().version == "1"
    assert (serving(PREPRODUCTION_ENDPOINT), serving(PRODUCTION_ENDPOINT)) == ("2", "1")
    assert record(two_versions, "2")["outcome"] == "failed"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["release", "--approve"], "nothing is in pre-production"),
        (["release", "--version", "1"], "already in production"),
        (["release", "--rollback"], "replaced no earlier production version"),
        (["release", "--to", "1"], "--to names the version --rollback goes back to"),
    ],
)
def test_release_steps_that_cannot_run_say_why(two_versions, no_servers_left, argv, message, caplog):
    assert main(argv) == EXIT_BAD_INPUT
    assert message in caplog.text
    assert two_versions.production().version == "1"


def test_approval_is_for_what_preproduction_tested(two_versions, free_port_config, no_servers_left, caplog):
    assert main(["release", "--config", str(free_port_config)]) == 0
    assert main(["release", "--approve", "--version", "1"]) == EXIT_BAD_INPUT
    assert "pre-production serves v2, not v1" in caplog.text
    assert two_versions.production().version == "1"


def test_a_retired_candidate_is_not_released(two_versions, no_servers_left, caplog):
    assert main(["models", "retire", "2", "--reason", "leaks a label"]) == 0
    assert main(["release"]) == EXIT_BAD_INPUT
    assert "leaks a label" in caplog.text
    assert serving(PREPRODUCTION_ENDPOINT) is None


def test_make_run_promotes_only_after_the_candidate_passed_its_smoke_test(
    project: Path, no_servers_left, monkeypatch, caplog
):
    pipeline.run(params={"alpha": 1000.0})  # v1 in production; the run configuration's alpha=1 clearly beats it
    fail_smoke_tests(monkeypatch)
    assert main(["run"]) == EXIT_SMOKE_FAILED
    registry = Registry()
    assert [v.version for v in registry.versions()] == ["2", "1"]  # registered, and a candidate still ...
    assert registry.production().version == "1"  # ... but production never moved
    assert "v2: predictions differ" in caplog.text
    assert local_deploy.local_endpoints(ProjectSettings()) == []  # the candidate's short-lived endpoint is gone


def test_release_is_local_and_says_so_when_the_target_is_azure(project: Path, monkeypatch, caplog):
    monkeypatch.setenv("AMLOPS_TARGET", "azure")
    assert main(["release"]) == EXIT_BAD_INPUT
    assert "azure deploy --stage preprod|prod" in caplog.text


def test_the_local_release_runs_the_steps_of_the_release_list(two_versions, free_port_config, no_servers_left, caplog):
    """`release` and `release --approve` are the list's pre-production and production steps, in its order."""
    from amlops.app import release_steps

    caplog.set_level("INFO")
    config = ["--config", str(free_port_config)]
    local_deploy.deploy_local(config=free_port_config)
    assert main(["release", *config]) == 0
    assert main(["release", "--approve", *config]) == 0
    ran = [r.getMessage().split()[1] for r in caplog.records if r.getMessage().endswith("(local)")]
    assert ran == [name for name, step in release_steps.STEPS.items() if not step.on_failure]


def test_a_failure_after_production_moved_puts_the_replaced_version_back(
    two_versions, free_port_config, no_servers_left
):
    """Promote fails after the candidate took the production endpoint: the undo step puts v1 back there."""
    from amlops.app import release_steps
    from amlops.lifecycle import release

    local_deploy.deploy_local(config=free_port_config)
    release_steps.run_local("preprod", release.LocalRelease(None, free_port_config))
    registry = Registry()

    def refuse(version: str) -> None:
        raise OSError("the registry is unreachable")

    registry.promote = refuse
    with pytest.raises(OSError, match="unreachable"):
        release_steps.run_local("prod", release.LocalRelease(None, free_port_config, registry=registry))
    assert serving(PRODUCTION_ENDPOINT) == "1"
    assert two_versions.production().version == "1"
    assert serving(PREPRODUCTION_ENDPOINT) == "2"  # the clean-up did not run: pre-production is still there
