"""A failed local release never takes the endpoint: the old server keeps answering on the same port."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import requests

from amlops.core.settings import ProjectSettings
from amlops.lifecycle import local_deploy
from amlops.registry.mlflow import Registry
from amlops.serving.local import EndpointError, free_port, stop_recorded
from tests.support.scoring import ROW

pytestmark = pytest.mark.integration


@pytest.fixture
def fixed_port_config(project: Path) -> Path:
    """A local deployment config on a fixed port, as `make serve` uses: old and new servers must share it."""
    path = project / "deploymentConfig.release-test.yml"
    text = (project / "deploymentConfig.local.yml").read_text()
    path.write_text(text.replace("port: 31311", f"port: {free_port('127.0.0.1')}").replace("60\n", "20\n"))
    return path


@pytest.fixture
def registry(project: Path, model_folder: Path) -> Registry:
    """Version 1 (good, in production) and version 2 (its model file missing: ``init()`` raises)."""
    registry = Registry()
    registry.promote(registry.register_folder(model_folder, {}).version)
    broken = project / "broken-model"
    shutil.copytree(model_folder, broken)
    (broken / "model.skops").unlink()
    registry.register_folder(broken, {})
    yield registry
    stop_recorded(ProjectSettings().endpoints_dir)


def _served(url: str) -> str:
    answer = requests.post(f"{url}/score", json={"data": [ROW]}, timeout=10)
    assert answer.status_code == 200, answer.text
    return answer.json()["model"]["version"]


def test_a_model_whose_init_raises_never_takes_the_endpoint(registry, fixed_port_config):
    old, _ = local_deploy.deploy_local("1", config=fixed_port_config)
    assert _served(old.url) == "1"
    with pytest.raises(EndpointError, match="exited with code"):
        local_deploy.deploy_local("2", config=fixed_port_config)
    # The public URL still answers, from the old server, and the endpoint still names it.
    assert [_served(old.url) for _ in range(20)] == ["1"] * 20
    assert local_deploy.running_local(ProjectSettings()).pid == old.pid


def test_a_good_release_takes_over_the_same_port(registry, fixed_port_config, model_folder):
    old, _ = local_deploy.deploy_local("1", config=fixed_port_config)
    version = registry.register_folder(model_folder, {}).version
    new, smoke = local_deploy.deploy_local(version, config=fixed_port_config)
    assert new.url == old.url
    assert smoke.model_version == version
    assert [_served(new.url) for _ in range(20)] == [version] * 20  # the old server is gone from the port


def test_another_endpoint_cannot_take_a_port_in_use(registry, fixed_port_config, project: Path):
    """`make serve` (or any other endpoint) must not silently share the port of a deployed endpoint."""
    from amlops.cli.main import main

    old, _ = local_deploy.deploy_local("1", config=fixed_port_config)
    assert main(["serve", "--config", str(fixed_port_config)]) == 1
    assert [_served(old.url) for _ in range(10)] == ["1"] * 10
    assert local_deploy.running_local(ProjectSettings()).pid == old.pid


def test_an_endpoint_whose_server_exited_is_still_recorded_undeployed(two_versions, tmp_path: Path):
    """`serve`'s watcher calls `undeploy` after its server died: the version's record says so, and why."""
    import json
    import subprocess
    import sys
    from dataclasses import asdict

    from amlops.registry import records
    from amlops.serving.local import EndpointState

    settings = ProjectSettings()
    exited = subprocess.Popen([sys.executable, "-c", "pass"])
    exited.wait()
    state = EndpointState(
        "local", exited.pid, "http://127.0.0.1:1", "http://127.0.0.1:1/score", "", two_versions.name, "1", "", "", 0.0
    )
    settings.endpoints_dir.mkdir(parents=True, exist_ok=True)
    (settings.endpoints_dir / "local.json").write_text(json.dumps(asdict(state)))
    assert local_deploy.undeploy_local("local") == state
    assert not (settings.endpoints_dir / "local.json").exists()
    record = json.loads(two_versions.get("1").tags[records.deployment_tag("local", "local")])
    assert (record["outcome"], record["detail"]) == ("undeployed", "its server had already exited")
    assert local_deploy.undeploy_local("local") is None
