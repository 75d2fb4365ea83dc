"""The doc's configuration files parse into typed objects; mistakes name the file and the field."""

from __future__ import annotations

from pathlib import Path

import pytest

from amlops.core import config, deployment_config
from amlops.core.settings import ProjectSettings, ScoringSettings
from amlops.serving.deploy import local_deployment_config, scoring_limits
from tests.support.checkout import REPO, copy_project


def test_committed_runconfig_parses():
    runconfig = config.load_runconfig(REPO / "sklearn.runconfig")
    assert runconfig.script == "train.py"
    assert (REPO / runconfig.script).is_file()
    assert (REPO / runconfig.environment.python.condaDependenciesFile).is_file()
    assert runconfig.argv == []  # the hyperparameters are contract.yml's; arguments only override them


def test_committed_inference_config_points_at_real_files():
    inference = config.load_inference_config(REPO / "inferenceConfig.yml")
    assert (REPO / inference.sourceDirectory / inference.entryScript).is_file()
    assert (REPO / inference.condaFile).is_file()


def test_committed_local_deployment_config_binds_loopback(project: Path):
    local = local_deployment_config(ProjectSettings())
    assert local.host == "127.0.0.1"
    limits = scoring_limits(local)
    assert limits.max_batch_rows == local.maxBatchRows
    assert limits.max_request_bytes == local.maxRequestBytes


def test_limits_default_when_the_config_omits_them():
    local = deployment_config.LocalDeploymentConfig(computeType="local")
    assert scoring_limits(local) == ScoringSettings()


def test_committed_aci_config_parses():
    aci = deployment_config.load_deployment_config(REPO / "deploymentConfig.yml")
    assert aci.computeType == "ACI"
    assert aci.authEnabled is True


def _write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("text", "field"),
    [
        ("computeType: local\nport: high\n", "port"),
        ("computeType: local\nworkers: 0\n", "workers"),
        ("computeType: local\nthreads: 4\n", "threads"),
        ("computeType: ACI\ncontainerResourceRequirements: {cpu: 1}\n", "containerResourceRequirements.memoryInGB"),
        (
            "computeType: ACI\ncontainerResourceRequirements: {cpu: -1, memoryInGB: 1}\n",
            "containerResourceRequirements.cpu",
        ),
        ("computeType: local\nmaxBatchRows: 0\n", "maxBatchRows"),
        ("port: 80\n", "computeType"),
    ],
)
def test_deployment_config_errors_name_file_and_field(tmp_path: Path, text: str, field: str):
    path = _write(tmp_path, "deploymentConfig.yml", text)
    with pytest.raises(config.ConfigError) as raised:
        deployment_config.load_deployment_config(path)
    assert f"{path}: field '{field}'" in str(raised.value)


def test_unknown_compute_type_is_named(tmp_path: Path):
    path = _write(tmp_path, "deploymentConfig.yml", "computeType: Edge\n")
    with pytest.raises(config.ConfigError, match="computeType"):
        deployment_config.load_deployment_config(path)


def test_local_endpoint_refuses_a_non_local_config(project: Path):
    with pytest.raises(config.ConfigError, match="needs 'local'"):
        local_deployment_config(ProjectSettings(), project / "deploymentConfig.yml")


@pytest.mark.parametrize(
    ("text", "field"),
    [
        ("entryScript: score.py\ncondaFile: a.yml\nruntime: java\n", "runtime"),
        ("condaFile: a.yml\n", "entryScript"),
        ("entryScript: score.py\ncondaFile: a.yml\nentry_script: x.py\n", "entry_script"),
    ],
)
def test_inference_config_errors_name_file_and_field(tmp_path: Path, text: str, field: str):
    path = _write(tmp_path, "inferenceConfig.yml", text)
    with pytest.raises(config.ConfigError, match=rf"inferenceConfig.yml: field '{field}'"):
        config.load_inference_config(path)


def test_runconfig_unknown_nested_field_is_named(tmp_path: Path):
    text = (REPO / "sklearn.runconfig").read_text().replace("    enabled: true\n", "    enabled: true\n    gpu: 1\n")
    path = _write(tmp_path, "sklearn.runconfig", text)
    with pytest.raises(config.ConfigError, match=r"sklearn.runconfig: field 'environment.docker.gpu'"):
        config.load_runconfig(path)


RUNCONFIG_REFUSALS = [
    (section, field, reason)
    for section, table in (
        ((), config.RUNCONFIG_REJECTED),
        (("environment",), config.ENVIRONMENT_REJECTED),
        (("environment", "python"), config.PYTHON_REJECTED),
        (("environment", "docker"), config.DOCKER_REJECTED),
    )
    for field, reason in table.items()
]


@pytest.mark.parametrize(("section", "field", "reason"), RUNCONFIG_REFUSALS)
def test_runconfig_v1_fields_are_refused_with_the_reason(tmp_path: Path, section: tuple, field: str, reason: str):
    import yaml

    document = yaml.safe_load((REPO / "sklearn.runconfig").read_text())
    place = document
    for key in section:
        place = place[key]
    place[field] = {"some": "v1 value"}
    path = _write(tmp_path, "sklearn.runconfig", yaml.safe_dump(document))
    with pytest.raises(config.ConfigError) as raised:
        config.load_runconfig(path)
    assert f"sklearn.runconfig: field '{'.'.join([*section, field])}': {reason}" in str(raised.value)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("a: [1, 2\n", "not valid YAML"),
        ("- a\n- b\n", "expected a mapping"),
    ],
)
def test_unreadable_files_are_named(tmp_path: Path, text: str, message: str):
    path = _write(tmp_path, "deploymentConfig.yml", text)
    with pytest.raises(config.ConfigError, match=message) as raised:
        deployment_config.load_deployment_config(path)
    assert str(path) in str(raised.value)


def test_missing_file_is_named(tmp_path: Path):
    with pytest.raises(config.ConfigError, match="file not found"):
        config.load_runconfig(tmp_path / "sklearn.runconfig")


# --- the machine: a compute instance, a network share ---------------------------------------------------------


def _mounts(tmp_path: Path, *lines: str) -> Path:
    path = tmp_path / "mounts"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_a_compute_instance_is_recognised_by_its_environment_or_its_own_description(tmp_path: Path):
    from amlops.core import machine

    nowhere = tmp_path / "no-such-file"
    assert machine.compute_instance({"CI_NAME": "ana-ci"}, nowhere) == "ana-ci"
    assert machine.compute_instance({"CI_NAME": " "}, nowhere) is None
    assert machine.compute_instance({}, nowhere) is None
    described = tmp_path / ".nbvm"
    described.write_text("instance=ana-ci\ndomainsuffix=westeurope.instances.azureml.ms\n")
    assert machine.compute_instance({}, described) == "ana-ci"


def test_a_folder_on_a_network_share_is_told_apart_by_the_mount_table(tmp_path: Path):
    from amlops.core import machine

    share = tmp_path / "cloudfiles" / "code"
    mounts = _mounts(
        tmp_path,
        "overlay / overlay rw 0 0",
        f"//account.file.core.windows.net/code {share} cifs rw,vers=3.1.1 0 0",
        f"tmpfs {share}/scratch tmpfs rw 0 0",
    )
    assert machine.filesystem_type(share / "Users" / "ana", mounts) == "cifs"
    assert machine.on_network_share(share / "Users" / "ana", mounts)
    assert not machine.on_network_share(share / "scratch" / "x", mounts)  # the longest mount point wins
    assert not machine.on_network_share(tmp_path / "elsewhere", mounts)
    assert machine.filesystem_type(tmp_path, tmp_path / "no-such-table") is None  # no /proc: nothing known


def test_the_local_registry_leaves_a_network_share_for_the_machines_own_disk(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    from amlops.core import machine

    share = tmp_path / "cloudfiles"
    root = copy_project(share / "code" / "Users" / "ana" / "my repo")
    monkeypatch.setattr(machine, "MOUNTS", _mounts(tmp_path, f"//acct/code {share} cifs rw 0 0"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    settings = ProjectSettings(root=root)
    assert settings.state_dir.parent == tmp_path / "home" / ".amlops"
    assert settings.state_dir.name.startswith("my repo-")
    assert settings.resolved_tracking_uri == f"sqlite:///{settings.state_dir / 'mlflow.db'}"
    other = ProjectSettings(root=copy_project(share / "code" / "Users" / "ana" / "other" / "my repo"))
    assert other.state_dir != settings.state_dir  # two clones, two registries
    monkeypatch.setattr(machine, "MOUNTS", _mounts(tmp_path, "overlay / overlay rw 0 0"))
    assert ProjectSettings(root=root).state_dir == root / ".mlops"
