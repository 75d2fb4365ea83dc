"""Training data as Azure ML data assets: registered, referred to by version or ``@latest``, read back.

The schedule case is the one that matters: azure-ai-ml resolves ``azureml:<name>@latest`` to a version when a
schedule is created, so a schedule given ``@latest`` keeps training on that version. ``register-data`` moves the
schedule to each new version instead.
"""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest

from amlops.azure import build_steps, data_assets, translate
from amlops.cli import azure as azure_cli
from amlops.cli.main import main as cli_main
from amlops.core.config import ConfigError
from tests.support.project import CONTRACT, SNAPSHOT
from tests.support.workspace import (
    ACCOUNT_KEY,
    CONTAINER,
    FakeBlobs,
    FakeComponents,
    FakeDataAssets,
    FakeDatastores,
    FakeJobs,
    FakeSchedules,
)

pytestmark = [
    pytest.mark.filterwarnings("ignore::marshmallow.warnings.ChangedInMarshmallow4Warning"),
    pytest.mark.filterwarnings("ignore::marshmallow.warnings.RemovedInMarshmallow4Warning"),
]


@pytest.fixture
def workspace(tmp_path: Path) -> SimpleNamespace:
    blobs = FakeBlobs(tmp_path / "storage")
    data = FakeDataAssets(blobs)
    return SimpleNamespace(
        blobs=blobs,
        data=data,
        datastores=FakeDatastores(),
        schedules=FakeSchedules(data=data),
        components=FakeComponents(),
        jobs=FakeJobs(["Completed"]),
    )


def _newer_snapshot(folder: Path) -> Path:
    """The snapshot with its rows reversed: the same contract, another file."""
    path = folder / "newer.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    pd.read_csv(SNAPSHOT).iloc[::-1].to_csv(path, index=False)
    return path


@pytest.mark.parametrize(
    ("reference", "parsed"),
    [("azureml:sales-data:3", ("sales-data", "3")), ("azureml:sales-data@latest", ("sales-data", None))],
)
def test_a_data_reference_is_a_version_or_latest(reference: str, parsed: tuple):
    assert data_assets.is_reference(reference)
    assert data_assets.parse_reference(reference) == parsed


@pytest.mark.parametrize("reference", ["azureml:sales-data", "azureml:sales-data@prod", "azureml::3", "azureml:a:b:c"])
def test_any_other_reference_is_refused_with_the_forms_accepted(reference: str):
    with pytest.raises(ConfigError, match=r"expected azureml:<name>:<version> or azureml:<name>@latest"):
        data_assets.parse_reference(reference)


def test_registering_numbers_versions_and_never_registers_the_same_file_twice(project: Path, workspace, tmp_path):
    settings = translate.Project.load().settings
    first = data_assets.register(workspace, project / CONTRACT.data, "sales", settings, say=lambda line: None)
    again = data_assets.register(workspace, project / CONTRACT.data, "sales", settings, say=lambda line: None)
    second = data_assets.register(workspace, _newer_snapshot(tmp_path), "sales", settings, say=lambda line: None)
    assert (first, again, second) == ("azureml:sales:1", "azureml:sales:1", "azureml:sales:2")
    assert data_assets.pin(workspace, "azureml:sales@latest") == "azureml:sales:2"


def test_a_file_that_breaks_the_contract_is_refused_before_anything_is_uploaded(project: Path, workspace, tmp_path):
    bad = tmp_path / "bad.csv"
    pd.read_csv(project / CONTRACT.data).drop(columns=[CONTRACT.target.name]).to_csv(bad, index=False)
    with pytest.raises(Exception, match=CONTRACT.target.name) as raised:
        data_assets.register(workspace, bad, "sales", translate.Project.load().settings)
    assert type(raised.value).__name__ == "DataValidationError"
    assert workspace.data.versions == {}


def test_a_checked_file_is_validated_once_and_again_only_when_it_changed(
    project: Path, workspace, tmp_path: Path, monkeypatch
):
    settings = translate.Project.load().settings
    checked = data_assets.check_file(_newer_snapshot(tmp_path), settings)
    validations: list[str] = []
    validate = data_assets.data.validate
    monkeypatch.setattr(
        data_assets.data, "validate", lambda *args, **kwargs: validations.append("x") or validate(*args, **kwargs)
    )
    assert data_assets.register(workspace, checked, "sales", settings, say=lambda line: None) == "azureml:sales:1"
    assert validations == []

    # Replaced after the check (while `register-data` signs in, say): read and refused as if it were a path.
    pd.read_csv(checked.path).drop(columns=[CONTRACT.target.name]).to_csv(checked.path, index=False)
    with pytest.raises(Exception, match=CONTRACT.target.name) as raised:
        data_assets.register(workspace, checked, "sales", settings, say=lambda line: None)
    assert type(raised.value).__name__ == "DataValidationError"
    assert validations == ["x"]
    assert [asset.version for asset in workspace.data.versions["sales"]] == ["1"]


def test_a_data_asset_downloads_through_its_datastore_with_public_calls(project: Path, workspace, tmp_path: Path):
    settings = translate.Project.load().settings
    reference = data_assets.register(workspace, project / CONTRACT.data, "sales", settings, say=lambda line: None)
    path = data_assets.download(workspace, reference, tmp_path / "dl", container_client=workspace.blobs)
    assert path.read_bytes() == (project / CONTRACT.data).read_bytes()
    assert workspace.blobs.opened == [("https://mlstorage7.blob.core.windows.net", CONTAINER, ACCOUNT_KEY)]
    latest = data_assets.download(workspace, "azureml:sales@latest", tmp_path / "dl2", container_client=workspace.blobs)
    assert latest.name == CONTRACT.data.name


def test_a_path_off_the_datastores_is_refused(workspace, tmp_path: Path):
    with pytest.raises(data_assets.AzureOperationError, match="not a datastore path"):
        data_assets.download_datastore_path(workspace, "https://x/y.csv", tmp_path)
    with pytest.raises(data_assets.AzureOperationError, match="no file there"):
        data_assets.download_datastore_path(
            workspace,
            "azureml://datastores/workspaceblobstore/paths/none.csv",
            tmp_path,
            container_client=workspace.blobs,
        )


def test_a_schedule_given_latest_says_which_version_it_keeps_and_moves_with_each_registration(
    project: Path, workspace, tmp_path: Path
):
    files = translate.Project.load()
    settings = files.settings
    data_assets.register(workspace, project / CONTRACT.data, "sales", settings, say=lambda line: None)
    lines: list[str] = []
    build_steps.publish(
        client=workspace,
        project=files,
        version="3",
        schedule="0 6 * * 1",
        data="azureml:sales@latest",
        say=lines.append,
    )
    name = translate.schedule_name(files)
    assert workspace.schedules.get(name).create_job.data == "azureml:sales:1"
    assert "scheduled runs train on azureml:sales:1" in "\n".join(lines)

    newer = data_assets.register(workspace, _newer_snapshot(tmp_path), "sales", settings, say=lambda line: None)
    assert workspace.schedules.get(name).create_job.data == "azureml:sales:1"  # what a schedule does by itself
    assert data_assets.retarget_schedule(workspace, files, newer, say=lines.append) == name
    kept = workspace.schedules.get(name)
    assert (kept.create_job.data, kept.create_job.component) == ("azureml:sales:2", f"azureml:{files.pipeline_name}:3")
    assert (kept.trigger.expression, kept.is_enabled) == ("0 6 * * 1", False)


def test_retargeting_without_a_schedule_changes_nothing(project: Path, workspace):
    assert data_assets.retarget_schedule(workspace, translate.Project.load(), "azureml:sales:1") is None
    assert workspace.schedules.calls == []


def test_a_run_of_the_published_pipeline_reads_a_data_asset_as_named(project: Path, tmp_path: Path):
    """Submitted now, ``@latest`` is resolved at submission: the reference goes to the job as it is."""
    from amlops.azure import render

    assert render.stage_data("azureml:sales@latest", tmp_path / "staged") == "azureml:sales@latest"
    assert not (tmp_path / "staged").exists()
    job = translate.scheduled_pipeline_job(translate.Project.load(), "azureml:p@latest", "azureml:sales@latest")
    FakeJobs(["Completed"]).validate(job)  # the SDK's offline validation
    assert job.inputs["data"]._data.path == "azureml:sales@latest"
    with pytest.raises(ConfigError, match="expected azureml"):
        render.stage_data("azureml:sales@newest", tmp_path / "staged")


def test_register_data_command(project: Path, workspace, monkeypatch, capsys, tmp_path: Path):
    files = translate.Project.load()
    monkeypatch.setattr(azure_cli, "_connect", lambda args: workspace)
    assert cli_main(["azure", "register-data", str(project / CONTRACT.data)]) == 0
    name = translate.data_asset_name(files)
    out = capsys.readouterr().out
    assert f"registered data asset azureml:{name}:1" in out
    assert "no training schedule yet" in out
    build_steps.publish(
        client=workspace, project=files, version="1", schedule="0 6 * * 1", data=f"azureml:{name}@latest", say=print
    )
    assert cli_main(["azure", "register-data", str(_newer_snapshot(tmp_path))]) == 0
    assert f"now trains on azureml:{name}:2" in capsys.readouterr().out
    assert workspace.schedules.get(translate.schedule_name(files)).create_job.data == f"azureml:{name}:2"
    pd.read_csv(SNAPSHOT).iloc[:-1].to_csv(tmp_path / "third.csv", index=False)
    assert cli_main(["azure", "register-data", str(tmp_path / "third.csv"), "--keep-schedule"]) == 0
    assert workspace.schedules.get(translate.schedule_name(files)).create_job.data == f"azureml:{name}:2"
