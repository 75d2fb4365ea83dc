"""Governance against a real (temporary) registry: deployment records, retirement, efficacy checks, events.

Local deploys start the real inference server (on free ports); Azure releases run against ``FakeCloud``, the
MLClient stand-in of ``tests/support/fakes.py``, with a models API that keeps tags.
"""

from __future__ import annotations

import functools
import json
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import requests

from amlops.azure import registry as azure_registry
from amlops.cli.main import main
from amlops.core import lineage, tags
from amlops.core.errors import EXIT_BAD_INPUT, EXIT_DEGRADED
from amlops.core.settings import ProjectSettings
from amlops.lifecycle import inventory, local_deploy, pipeline, retirement
from amlops.registry import records
from amlops.registry.base import RetiredVersionError
from amlops.registry.mlflow import Registry
from tests.support.fakes import MODEL, FakeCloud, TaggedModels
from tests.support.governance import logged_events, record, served_version
from tests.support.project import CONTRACT, edit_contract, relabelled
from tests.support.scoring import ROW

pytestmark = [
    pytest.mark.integration,
    pytest.mark.filterwarnings("ignore::marshmallow.warnings.ChangedInMarshmallow4Warning"),
    pytest.mark.filterwarnings("ignore::marshmallow.warnings.RemovedInMarshmallow4Warning"),
]


@pytest.fixture
def shifted(project: Path, table) -> Path:
    """Newer labelled data for the test project whose target relationship changed (``relabelled``)."""
    path = project / "data" / "relabelled.csv"
    relabelled(table).to_csv(path, index=False)
    return path


# --- deployment tracking -----------------------------------------------------------------------------------------


def test_deploy_is_recorded_shown_and_undeploy_updates_it(
    two_versions, free_port_config, no_servers_left, capsys: pytest.CaptureFixture
):
    assert main(["deploy", "--config", str(free_port_config)]) == 0
    state = json.loads(capsys.readouterr().out)
    assert served_version(state["scoring_uri"]) == "1"

    recorded = record(two_versions, "1")
    assert recorded["outcome"] == "succeeded"
    assert recorded["url"] == state["scoring_uri"]
    assert (recorded["target"], recorded["endpoint"], recorded["stage"]) == ("local", "local", "local")
    assert recorded["config"] == str(free_port_config.resolve())

    assert main(["models", "show", MODEL]) == 0
    shown = capsys.readouterr().out
    assert f"{MODEL} v1  (production)" in shown
    live_section = shown.split("live deployments")[1]
    assert state["scoring_uri"] in live_section
    assert "rmse 53.78" in shown
    assert main(["models", "show", f"{MODEL}:1", "--json"]) == 0
    described = json.loads(capsys.readouterr().out)
    assert [(d["endpoint"], d["url"]) for d in described["live"]] == [("local", state["scoring_uri"])]
    assert described["metrics"] == {"rmse": 53.78, "mae": 42.81, "r2": 0.4541}

    assert main(["endpoints", "list", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [(r["endpoint"], r["version"], r["status"]) for r in rows] == [("local", "1", "live")]

    assert main(["undeploy"]) == 0
    assert record(two_versions, "1")["outcome"] == "undeployed"
    assert main(["models", "show", "--json"]) == 0
    described = json.loads(capsys.readouterr().out)
    assert described["live"] == []
    assert [h["outcome"] for h in described["history"]] == ["succeeded", "undeployed"]
    assert main(["endpoints", "list", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == []


def test_a_new_version_replaces_the_old_one_only_after_its_smoke_test(
    two_versions, free_port_config, no_servers_left, monkeypatch
):
    settings = ProjectSettings()
    old, _ = local_deploy.deploy_local(config=free_port_config)
    new, smoke = local_deploy.deploy_local("2", config=free_port_config)
    assert smoke.model_version == "2"
    assert served_version(new.scoring_uri) == "2"
    assert local_deploy.running_local(settings).pid == new.pid
    with pytest.raises(requests.ConnectionError):
        requests.post(old.scoring_uri, json={"data": [ROW]}, timeout=5)
    assert record(two_versions, "1")["outcome"] == "undeployed"
    assert "replaced by v2" in record(two_versions, "1")["detail"]
    assert record(two_versions, "2")["outcome"] == "succeeded"

    # A release whose smoke test fails leaves the serving version alone, and is recorded as failed.
    from amlops.serving.smoke import SmokeTestFailure

    def failing(state, data):
        raise SmokeTestFailure("predictions differ")

    monkeypatch.setattr("amlops.lifecycle.local_deploy.smoke_local", failing)  # where deploys call it
    with pytest.raises(SmokeTestFailure):
        local_deploy.deploy_local("1", config=free_port_config)
    assert local_deploy.running_local(settings).pid == new.pid
    assert served_version(new.scoring_uri) == "2"
    assert record(two_versions, "1")["outcome"] == "failed"
    assert "predictions differ" in record(two_versions, "1")["detail"]
    assert record(two_versions, "2")["outcome"] == "succeeded"


def test_run_records_its_short_lived_endpoint(project: Path, no_servers_left, capsys):
    assert main(["run"]) == 0
    capsys.readouterr()
    history = records.history(Registry().get("1"))
    assert [(h.endpoint, h.outcome) for h in history] == [("run", "succeeded"), ("run", "undeployed")]


class WithoutAliasesOrTagSearch:
    """The real SQLite registry client behind a server without aliases whose search cannot filter on tags."""

    def __init__(self, client: Any):
        self._client = client

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    def get_model_version_by_alias(self, *args: Any) -> Any:
        from mlflow.exceptions import MlflowException

        raise MlflowException("registered model aliases are not supported")

    set_registered_model_alias = get_model_version_by_alias

    def search_model_versions(self, filter_string: str, *args: Any, **kwargs: Any) -> Any:
        from mlflow.exceptions import MlflowException

        if "tags." in filter_string:
            raise MlflowException(f"unsupported filter: {filter_string}")
        return self._client.search_model_versions(filter_string, *args, **kwargs)


def test_production_is_found_without_aliases_or_a_tag_search(project: Path, model_folder: Path):
    registry = Registry()
    registry.client = WithoutAliasesOrTagSearch(registry.client)
    for _ in range(2):
        registry.register_folder(model_folder, {"decision": "register"})
    assert registry.production() is None
    registry.promote("1")
    assert registry.production().version == "1"
    registry.promote("2")
    assert registry.production().version == "2"
    assert [v.in_production for v in registry.versions()] == [True, False]


class IgnoringTagFilters(WithoutAliasesOrTagSearch):
    """A server without aliases that silently drops a search's tag clause (and answers every version)."""

    def search_model_versions(self, filter_string: str, *args: Any, **kwargs: Any) -> Any:
        return self._client.search_model_versions(filter_string.split(" and tags.")[0], *args, **kwargs)


def test_production_is_not_the_newest_version_where_the_registry_ignores_tag_filters(project: Path, model_folder: Path):
    registry = Registry()
    registry.client = IgnoringTagFilters(registry.client)
    for _ in range(2):
        registry.register_folder(model_folder, {"decision": "register"})
    registry.promote("1")
    assert registry.production().version == "1"  # not v2, the newest, which the ignored filter would return


def test_history_stays_within_its_limits(two_versions):
    for number in range(records.HISTORY_LIMIT + 15):
        entry = records.DeploymentRecord(
            "azure",
            f"endpoint-{number % 3}",
            f"d{number}",
            "https://x/score",
            "succeeded",
            lineage.now(),
            detail="x" * 200,
        )
        assert records.record_deployment(two_versions, "1", entry)
    version = two_versions.get("1")
    kept = records.history(version)
    assert len(version.tags[tags.HISTORY_TAG]) <= records.TAG_VALUE_BUDGET
    assert 0 < len(kept) <= records.HISTORY_LIMIT
    assert kept[-1].deployment == f"d{records.HISTORY_LIMIT + 14}"  # the newest kept, the oldest dropped
    assert {r.endpoint for r in records.endpoint_records(version)} == {"endpoint-0", "endpoint-1", "endpoint-2"}


def test_an_import_drops_the_source_registrys_deployment_records(two_versions, tmp_path):
    from amlops.lifecycle import migrate

    source_only = {"deployment.local.local": "{}", "deployments": "[]", "efficacy.last": "{}"}
    two_versions.set_tags("2", source_only | {"retired": "true"})
    archive = migrate.export_version(two_versions, "2", tmp_path / "v2.tar.gz")
    other = Registry(ProjectSettings().model_copy(update={"tracking_uri": f"sqlite:///{tmp_path / 'o' / 'db'}"}))
    tags = other.get(migrate.import_archive(archive, other).version).tags
    assert tags["retired"] == "true"  # a retirement travels, deployments and efficacy checks do not
    assert tags["metric.rmse"] == "53.78"
    assert not set(tags) & set(source_only)


# --- retirement ----------------------------------------------------------------------------------------------------


def test_a_retired_version_is_refused_by_every_deploy_path(two_versions, free_port_config, caplog, capsys):
    assert main(["models", "retire", f"{MODEL}:2", "--reason", "trained on a corrupt extract"]) == 0
    retired = two_versions.get("2")
    assert retired.retired
    assert retired.tags["retired_reason"] == "trained on a corrupt extract"
    assert retired.tags["retired_by"] == lineage.who()
    assert retired.tags["retired_at"]

    for argv in (
        ["deploy", "--version", "2", "--config", str(free_port_config)],
        ["models", "promote", "2"],
    ):
        caplog.clear()
        assert main(argv) == EXIT_BAD_INPUT, argv
        assert "version 2 is retired" in caplog.text
        assert "trained on a corrupt extract" in caplog.text
    from amlops.serving.deploy import local_endpoint

    with pytest.raises(RetiredVersionError, match="corrupt extract"):
        local_endpoint("2", deployment_config=free_port_config)
    assert local_deploy.local_endpoints() == []
    assert not (ProjectSettings().build_dir / "deploy").exists()  # refused before anything was staged
    assert two_versions.production().version == "1"

    assert main(["models", "unretire", "2", "--reason", "false alarm"]) == 0
    again = two_versions.get("2")
    assert not again.retired
    assert again.tags["unretired_reason"] == "false alarm"
    assert again.tags["retired_reason"] == "trained on a corrupt extract"  # the last retirement stays on record
    assert main(["models", "promote", "2"]) == 0
    assert two_versions.production().version == "2"
    assert [e["type"] for e in logged_events()][-3:] == ["model.retired", "model.unretired", "model.promoted"]


def test_retiring_production_needs_a_valid_replacement(two_versions, caplog):
    assert main(["models", "retire", "1", "--reason", "stale"]) == EXIT_BAD_INPUT
    assert "is the production version: name the version that replaces it" in caplog.text
    assert main(["models", "retire", "1", "--reason", "stale", "--replacement", "1"]) == EXIT_BAD_INPUT
    assert main(["models", "retire", "1", "--reason", "stale", "--replacement", "9"]) == EXIT_BAD_INPUT
    assert "has no version '9'" in caplog.text
    assert main(["models", "retire", "2", "--reason", "bad"]) == 0
    assert main(["models", "retire", "1", "--reason", "stale", "--replacement", "2"]) == EXIT_BAD_INPUT
    assert "version 2 is retired" in caplog.text
    assert not two_versions.get("1").retired
    assert two_versions.production().version == "1"
    assert main(["models", "unretire", "2"]) == 0

    promoted_before = len(logged_events("model.promoted"))
    assert main(["models", "retire", "1", "--reason", "stale", "--replacement", "2"]) == 0
    assert two_versions.production().version == "2"
    assert two_versions.get("1").retired
    assert len(logged_events("model.promoted")) == promoted_before + 1
    assert logged_events("model.retired")[-1]["details"]["replacement"] == "2"
    assert main(["models", "retire", "2", "--reason", "x"]) == EXIT_BAD_INPUT  # production again: needs one


def test_retire_replace_moves_a_live_endpoint_to_production(two_versions, free_port_config, no_servers_left, capsys):
    old, _ = local_deploy.deploy_local(config=free_port_config)
    assert main(["models", "retire", "1", "--reason", "stale", "--replacement", "2"]) == 0
    out = capsys.readouterr().out
    assert f"STILL LIVE: local endpoint local (local) {old.scoring_uri}" in out
    assert served_version(old.scoring_uri) == "1"  # retiring alone does not stop a live endpoint...
    assert main(["models", "unretire", "1"]) == 0
    assert main(["models", "promote", "1"]) == 0

    code = main(["models", "retire", "1", "--reason", "stale", "--replacement", "2", "--replace"])
    assert code == 0
    out = capsys.readouterr().out
    assert "replaced: local endpoint local serves v2" in out
    assert "STILL LIVE" not in out
    new = local_deploy.running_local()
    assert new.pid != old.pid
    assert served_version(new.scoring_uri) == "2"  # ...--replace does, through the deploy path
    assert record(two_versions, "1")["outcome"] == "undeployed"
    assert record(two_versions, "2")["outcome"] == "succeeded"
    assert logged_events("model.retired")[-1]["details"]["live"][0]["endpoint"] == "local"


# --- efficacy ------------------------------------------------------------------------------------------------------


def test_models_check_ok_on_the_snapshot_and_degraded_on_relabelled_data(project: Path, shifted: Path, capsys):
    pipeline.run()
    assert main(["models", "check", "--data", str(project / CONTRACT.data)]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"ok: {MODEL} v1")
    assert main(["models", "check", "--data", str(shifted), "--json"]) == EXIT_DEGRADED
    report = json.loads(capsys.readouterr().out)
    assert report["status"] == "degraded"
    assert report["metrics"]["rmse"] > CONTRACT.gate.limits["rmse"].max
    assert any("above the ceiling" in reason for reason in report["reasons"])
    assert any("worse than the" in reason for reason in report["reasons"])
    assert report["retrained"] is None
    last = json.loads(Registry().get("1").tags[tags.EFFICACY_TAG])
    assert (last["status"], last["data"]) == ("degraded", shifted.name)
    assert len(logged_events("model.degraded")) == 1
    assert EXIT_DEGRADED not in (0, 1, EXIT_BAD_INPUT, 3)


def test_the_training_data_itself_is_never_degraded(project: Path, capsys):
    pipeline.run()
    assert main(["models", "check", "--data", str(project / CONTRACT.data)]) == 0
    assert capsys.readouterr().out.startswith("ok: ")


def test_thresholds_come_from_the_contract_and_configuration(project: Path, monkeypatch, caplog, capsys):
    pipeline.run()
    edit_contract(project, gate={"limits": {"rmse": {"max": 40}}})
    assert main(["models", "check", "--data", str(project / CONTRACT.data)]) == EXIT_DEGRADED
    assert "is above the ceiling 40" in capsys.readouterr().out
    monkeypatch.setenv("AMLOPS_EFFICACY_MAX_RELATIVE_DEGRADATION", "minus one")
    assert main(["models", "check", "--data", str(project / CONTRACT.data)]) == EXIT_BAD_INPUT
    assert "AMLOPS_EFFICACY_MAX_RELATIVE_DEGRADATION" in caplog.text


def test_check_validates_the_data_first(project: Path, tmp_path: Path, caplog):
    pipeline.run()
    bad = tmp_path / "bad.csv"
    bad.write_text((project / CONTRACT.data).read_text().replace("length,", "span,", 1))
    assert main(["models", "check", "--data", str(bad)]) == EXIT_BAD_INPUT
    assert "'length'" in caplog.text


def test_degraded_check_with_retrain_trains_a_model_that_passes(project: Path, shifted: Path, capsys):
    pipeline.run()
    assert main(["models", "check", "--data", str(shifted), "--retrain", "--json"]) == EXIT_DEGRADED
    report = json.loads(capsys.readouterr().out)
    assert report["retrained"]["outcome"] == "register"
    assert report["retrained"]["production_version"] == "2"
    assert main(["models", "check", "--data", str(shifted)]) == 0  # the retrained model is good enough on it


# --- events --------------------------------------------------------------------------------------------------------


@pytest.fixture
def event_sink(project: Path, tmp_path: Path, monkeypatch) -> Path:
    """A configured events command that appends what it receives on stdin (one line per invocation)."""
    sink = tmp_path / "received.jsonl"
    script = tmp_path / "sink.py"
    script.write_text(
        "import os, sys\n"
        "event = sys.stdin.read().strip()\n"
        f"with open({str(sink)!r}, 'a') as out:\n"
        "    out.write(os.environ['AMLOPS_EVENT_TYPE'] + ' ' + event + '\\n')\n"
    )
    monkeypatch.setenv("AMLOPS_EVENTS_COMMAND", f"{sys.executable} {script}")
    return sink


def test_an_event_fires_exactly_once_per_registration_and_promotion(event_sink: Path):
    pipeline.run()
    logged = logged_events()
    assert [(e["type"], e["version"]) for e in logged] == [("model.registered", "1"), ("model.promoted", "1")]
    received = event_sink.read_text().splitlines()
    assert [line.split(" ", 1)[0] for line in received] == ["model.registered", "model.promoted"]
    assert [json.loads(line.split(" ", 1)[1])["id"] for line in received] == [e["id"] for e in logged]
    assert logged[0]["model"] == MODEL
    assert logged[0]["registry"] == ProjectSettings().resolved_tracking_uri

    pipeline.run()  # the gate keeps production: nothing registered, nothing promoted
    assert main(["models", "promote", "1"]) == 0  # already production: no change, no event
    assert len(logged_events()) == 2
    assert len(event_sink.read_text().splitlines()) == 2


def test_a_failing_event_command_does_not_undo_the_action(project: Path, monkeypatch, caplog):
    monkeypatch.setenv("AMLOPS_EVENTS_COMMAND", f"{sys.executable} -c 'import sys; sys.exit(7)'")
    result = pipeline.run()
    assert result.registration["production_version"] == "1"
    assert "AMLOPS_EVENTS_COMMAND exited with code 7" in caplog.text
    assert len(logged_events()) == 2


# --- Azure: the release path, at the SDK boundary -----------------------------------------------------------------


@pytest.fixture
def azure(project: Path, azure_models):
    cloud = FakeCloud({k: v for k, v in azure_models.items() if k != "wrong"}, azure_models["wrong"])
    models = TaggedModels(cloud.models)
    client = SimpleNamespace(
        online_endpoints=cloud.online_endpoints, online_deployments=cloud.online_deployments, models=models
    )
    yield cloud, client, azure_registry.AzureRegistry(client, MODEL)
    cloud.close()


ENDPOINT = f"{MODEL}-preprod"


def test_azure_releases_and_rollbacks_are_recorded_on_the_versions(azure):
    from amlops.azure import build_steps

    cloud, client, registry = azure
    serving = functools.partial(azure_registry.azure_serving, client)
    quiet = {"say": lambda line: None}
    build_steps.release("preprod", version="1", client=client, deployment_name="blue", **quiet)
    first = json.loads(registry.get("1").tags[records.deployment_tag("azure", ENDPOINT)])
    assert (first["outcome"], first["deployment"], first["traffic"], first["stage"]) == (
        "succeeded",
        "blue",
        100,
        "preprod",
    )
    assert first["url"] == cloud.uri(ENDPOINT)

    assert "detail" not in first  # all traffic at once: nothing more to say
    build_steps.release(
        "preprod", version="2", client=client, deployment_name="green", keep_old=True, traffic_steps=[10, 50], **quiet
    )
    green = json.loads(registry.get("2").tags[records.deployment_tag("azure", ENDPOINT)])
    assert (green["traffic"], green["detail"]) == (100, "traffic in steps: 10% → 50% → 100%")
    shown = inventory.render_description(inventory.describe(registry, registry.get("2"), serving=serving))
    assert "green  (traffic in steps: 10% → 50% → 100%)" in shown.split("history")[1]
    kept = json.loads(registry.get("1").tags[records.deployment_tag("azure", ENDPOINT)])
    assert (kept["outcome"], kept["traffic"]) == ("succeeded", 0)  # kept at 0% for a rollback: not live
    assert [r.endpoint for r in inventory.live_deployments(registry, registry.get("1"), serving=serving)] == []
    assert [r.deployment for r in inventory.live_deployments(registry, registry.get("2"), serving=serving)] == ["green"]

    rows = azure_registry.azure_endpoints(client, registry)
    assert [(r["deployment"], r["version"], r["traffic"]) for r in rows if r["endpoint"] == ENDPOINT] == [
        ("green", "2", 100),
        ("blue", "1", 0),
    ]

    build_steps.rollback("preprod", client=client, **quiet)
    assert json.loads(registry.get("2").tags[records.deployment_tag("azure", ENDPOINT)])["outcome"] == "rolled-back"
    back = json.loads(registry.get("1").tags[records.deployment_tag("azure", ENDPOINT)])
    assert (back["outcome"], back["traffic"]) == ("succeeded", 100)
    assert [h.outcome for h in records.history(registry.get("2"))] == ["succeeded", "rolled-back"]


def test_azure_release_and_rollback_refuse_a_retired_version(azure):
    from amlops.azure import build_steps

    cloud, client, registry = azure
    quiet = {"say": lambda line: None}
    build_steps.release("preprod", version="1", client=client, deployment_name="blue", **quiet)
    build_steps.release("preprod", version="2", client=client, deployment_name="green", keep_old=True, **quiet)
    retirement.retire(registry, "1", "leaks a feature from the future", say=lambda line: None)
    assert registry.get("1").retired

    cloud.events.clear()
    with pytest.raises(RetiredVersionError, match="leaks a feature from the future"):
        build_steps.release("preprod", version="1", client=client, deployment_name="again", **quiet)
    with pytest.raises(RetiredVersionError, match="leaks a feature"):
        build_steps.rollback("preprod", client=client, **quiet)  # blue serves the retired v1
    assert not [e for e in cloud.events if e[0] in ("create_deployment", "endpoint")]  # nothing created or moved
    assert cloud.endpoints[ENDPOINT].traffic == {"green": 100, "blue": 0}

    with pytest.raises(RetiredVersionError):
        registry.promote("1")
    registry.promote("2")
    assert registry.production().version == "2"


def test_a_failed_azure_release_is_recorded_as_failed(azure):
    from amlops.azure import build_steps
    from amlops.serving.smoke import SmokeTestFailure

    cloud, client, registry = azure
    cloud.serve_wrong_model.add("bad")
    with pytest.raises(SmokeTestFailure):
        build_steps.release("preprod", version="1", client=client, deployment_name="bad", say=lambda line: None)
    failed = json.loads(registry.get("1").tags[records.deployment_tag("azure", ENDPOINT)])
    assert (failed["outcome"], failed["deployment"]) == ("failed", "bad")
    assert "predictions differ" in failed["detail"]


def test_endpoints_list_target_azure(azure, monkeypatch, capsys):
    from amlops.azure import build_steps

    cloud, client, _ = azure
    build_steps.release("preprod", version="2", client=client, deployment_name="blue", say=lambda line: None)
    monkeypatch.setattr("amlops.azure.connection.connect", lambda config=None: client)
    assert main(["endpoints", "list", "--target", "azure"]) == 0
    out = capsys.readouterr().out
    assert ENDPOINT in out
    assert "blue" in out
    assert cloud.uri(ENDPOINT) in out
    assert f"{MODEL}-prod" in out  # the production stage's endpoint, not created yet


def test_a_pipeline_run_on_azure_promotes_through_the_workspace_registry(azure):
    from amlops.app.targets import AzureTarget

    _, client, registry = azure
    target = AzureTarget(client)
    outcome = target.promote_registered({"registered_version": "2", "production_version": None})
    assert outcome["production_version"] == registry.production().version == "2"
    assert logged_events("model.promoted")[-1]["version"] == "2"
    retirement.retire(registry, "1", "trained on a leaked label", say=lambda line: None)
    with pytest.raises(RetiredVersionError, match="trained on a leaked label"):
        target.promote_registered({"registered_version": "1", "production_version": "2"})
    assert registry.production().version == "2"


def test_a_version_moves_from_one_workspace_to_another(azure, azure_models, tmp_path: Path, monkeypatch, capsys):
    _, dev_client, dev = azure  # versions 1 and 2
    dev.promote("2")
    prod = TaggedModels({"1": azure_models["1"]}, store=tmp_path / "prod-store")
    clients = {"dev.json": dev_client, "prod.json": SimpleNamespace(models=prod)}
    monkeypatch.setattr("amlops.azure.connection.connect", lambda config=None: clients[Path(config).name])
    archive = tmp_path / "v2.tar.gz"
    dev_target = ["--target", "azure", "--workspace-config", "dev.json"]
    prod_target = ["--target", "azure", "--workspace-config", "prod.json"]

    assert main(["models", "export", "2", "--out", str(archive), *dev_target]) == 0
    capsys.readouterr()
    assert main(["models", "import", str(archive), *prod_target]) == 0
    imported = json.loads(capsys.readouterr().out)
    assert (imported["version"], imported["source_version"], imported["promoted"]) == ("2", "2", False)
    moved = azure_registry.AzureRegistry(clients["prod.json"], MODEL).get("2")
    assert moved.tags["imported_from_version"] == "2"
    assert moved.tags["imported_from_registry"].startswith("azureml://workspaces/")
    assert not moved.in_production  # production is the target's decision (--promote)
    assert (prod.folders["2"] / "MLmodel").read_bytes() == (azure_models["2"] / "MLmodel").read_bytes()

    assert main(["models", "import", str(archive), *prod_target, "--promote"]) == 0  # again: nothing new
    assert json.loads(capsys.readouterr().out)["version"] == "2"
    assert sorted(prod.folders) == ["1", "2"]
    assert azure_registry.AzureRegistry(clients["prod.json"], MODEL).production().version == "2"
    assert main(["models", "import", str(archive), *prod_target, "--registry-uri", "sqlite:///x.db"]) == EXIT_BAD_INPUT


def test_models_list_target_azure(azure, monkeypatch, capsys):
    _, client, registry = azure
    registry.promote("2")
    monkeypatch.setattr("amlops.azure.connection.connect", lambda config=None: client)
    assert main(["models", "list", "--target", "azure", "--json"]) == 0
    listed = {v["version"]: v for v in json.loads(capsys.readouterr().out)}
    assert sorted(listed) == sorted(v.version for v in registry.versions())
    assert [v for v, entry in listed.items() if entry["production"]] == ["2"]
    assert listed["2"]["metrics"] == registry.get("2").metrics
    assert main(["models", "list", "--target", "azure"]) == 0
    assert any(line.split()[:2] == ["2", "*"] for line in capsys.readouterr().out.splitlines())


def test_azure_cleanup_records_the_undeployment(azure, monkeypatch):
    """`azure cleanup` deletes the kept deployment and its version's record says so (it said "kept for rollback")."""
    from amlops.azure import build_steps

    _, client, models = azure
    quiet = {"say": lambda line: None}
    build_steps.release("preprod", version="1", client=client, deployment_name="blue", **quiet)
    build_steps.release("preprod", version="2", client=client, deployment_name="green", keep_old=True, **quiet)
    serving = functools.partial(azure_registry.azure_serving, client)
    described = inventory.describe(models, models.get("1"), serving=serving)
    assert [d["status"] for d in described["deployments"]] == ["standby (0% traffic)"]
    monkeypatch.setattr("amlops.cli.azure._connect", lambda args: client)
    assert main(["azure", "cleanup", "--stage", "preprod"]) == 0
    record = json.loads(models.get("1").tags[records.deployment_tag("azure", ENDPOINT)])
    assert (record["outcome"], record["detail"]) == ("undeployed", "idle deployment deleted")
    assert [d["status"] for d in inventory.describe(models, models.get("1"), serving=serving)["deployments"]] == [
        "undeployed"
    ]


def test_a_data_asset_needs_the_azure_target(project: Path, caplog):
    assert main(["models", "check", "--data", "azureml:labelled-checks:3"]) == 2
    assert "needs --target azure" in caplog.text
