"""Export a model from one registry, import it into another, deploy it there; tampering is refused."""

from __future__ import annotations

import gzip
import io
import json
import tarfile
from pathlib import Path

import numpy as np
import pytest

from amlops.core.lineage import redact_uri
from amlops.core.settings import ProjectSettings
from amlops.core.tags import ORIGIN_TAGS
from amlops.lifecycle import pipeline
from amlops.lifecycle.migrate import ArchiveError, export_version, import_archive
from amlops.registry.mlflow import Registry
from tests.support.project import CONTRACT

pytestmark = pytest.mark.integration


@pytest.fixture
def exported(project: Path, tmp_path: Path) -> tuple[Registry, Path]:
    pipeline.run()
    source = Registry()
    return source, export_version(source, "1", tmp_path / "exports" / f"{CONTRACT.name}-v1.tar.gz")


@pytest.fixture
def target(tmp_path: Path) -> Registry:
    """A second, empty registry (another SQLite file, its own artifact folder)."""
    uri = f"sqlite:///{tmp_path / 'prod-registry' / 'mlflow.db'}"
    return Registry(ProjectSettings().model_copy(update={"tracking_uri": uri}))


def test_archive_holds_model_metadata_and_manifest(exported):
    _, archive = exported
    with tarfile.open(archive) as tar:
        names = set(tar.getnames())
        metadata = json.load(tar.extractfile("metadata.json"))
        manifest = tar.extractfile("MANIFEST.sha256").read().decode()
    assert {"model/MLmodel", "model/model.skops", "metadata.json", "MANIFEST.sha256"} <= names
    assert metadata["name"] == CONTRACT.name
    assert metadata["version"] == "1"
    assert {"metric.rmse", "data_sha256", "git_commit", "pipeline_run_id"} <= metadata["tags"].keys()
    assert "model/model.skops" in manifest
    assert "metadata.json" in manifest


def test_import_into_an_empty_registry_keeps_lineage_and_predicts_identically(exported, target, tmp_path):
    from amlops.scoring.model import load_model

    source, archive = exported
    imported = import_archive(archive, target)
    assert (imported.version, imported.source_version, imported.promoted) == ("1", "1", False)
    assert target.production() is None  # the production marker is left alone by default

    original, copied = source.get("1"), target.get("1")
    for key in ("metric.rmse", "metric.r2", "data_sha256", "git_commit", "pipeline_run_id", "param.alpha"):
        assert copied.tags[key] == original.tags[key]
    assert copied.tags["imported_from_version"] == "1"
    assert copied.tags["imported_from_registry"] == source.settings.resolved_tracking_uri
    assert set(ORIGIN_TAGS) <= copied.tags.keys()

    bounds = [column.range or (min(column.categories), max(column.categories)) for column in CONTRACT.features]
    rows = np.random.default_rng(0).uniform(*np.array(bounds).T, size=(50, len(bounds)))
    before = load_model(source.download("1", tmp_path / "a")).estimator.predict(rows)
    after = load_model(target.download("1", tmp_path / "b")).estimator.predict(rows)
    np.testing.assert_array_equal(before, after)


def test_importing_the_same_archive_twice_registers_once(exported, target):
    _, archive = exported
    first = import_archive(archive, target)
    again = import_archive(archive, target, promote=True)
    assert again.version == first.version
    assert [v.version for v in target.versions()] == [first.version]
    assert target.production().version == first.version


def test_imported_model_deploys_and_serves_the_same_predictions(exported, target):
    from amlops.serving.deploy import local_endpoint
    from amlops.serving.smoke import smoke_local

    _, archive = exported
    import_archive(archive, target, promote=True)
    assert target.production().version == "1"
    endpoint = local_endpoint(settings=target.settings, registry=target, name="imported", port=0)
    with endpoint:
        result = smoke_local(endpoint.state, target.settings.data_snapshot)
    assert result.max_abs_error <= 1e-9


def _rewrite(archive: Path, dest: Path, change) -> Path:
    """Copy an archive member by member, letting ``change(name, data)`` alter or drop (None) each file."""
    with tarfile.open(archive) as source, tarfile.open(dest, "w:gz") as out:
        for member in source.getmembers():
            data = source.extractfile(member).read() if member.isfile() else None
            if data is not None:
                data = change(member.name, data)
                if data is None:
                    continue
                member.size = len(data)
            out.addfile(member, io.BytesIO(data) if data is not None else None)
    return dest


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            lambda name, data: data[:-1] + bytes([data[-1] ^ 1]) if name == "model/model.skops" else data,
            "checksum mismatch for model/model.skops",
        ),
        (lambda name, data: None if name == "model/MLmodel" else data, "missing: ['model/MLmodel']"),
        (
            lambda name, data: data.replace(b'"version": "1"', b'"version": "9"') if name == "metadata.json" else data,
            "checksum mismatch for metadata.json",
        ),
    ],
    ids=["altered model", "missing file", "altered metadata"],
)
def test_a_tampered_archive_is_refused_and_nothing_is_registered(exported, target, tmp_path, change, message):
    _, archive = exported
    tampered = _rewrite(archive, tmp_path / "tampered.tar.gz", change)
    with pytest.raises(ArchiveError, match=message.replace("[", r"\[").replace("]", r"\]")):
        import_archive(tampered, target)
    assert target.versions() == []


def test_an_extra_file_is_refused(exported, target, tmp_path):
    _, archive = exported
    extended = tmp_path / "extended.tar.gz"
    _rewrite(archive, extended, lambda name, data: data)
    with tarfile.open(extended) as tar:
        members = [(m, tar.extractfile(m).read() if m.isfile() else None) for m in tar.getmembers()]
    with tarfile.open(extended, "w:gz") as tar:
        for member, data in members:
            tar.addfile(member, io.BytesIO(data) if data is not None else None)
        payload = b"import os\n"
        info = tarfile.TarInfo("model/extra.py")
        info.size = len(payload)
        tar.addfile(info, io.BytesIO(payload))
    with pytest.raises(ArchiveError, match="not in the manifest"):
        import_archive(extended, target)


def test_a_truncated_archive_is_refused(exported, target, tmp_path):
    _, archive = exported
    truncated = tmp_path / "truncated.tar.gz"
    truncated.write_bytes(archive.read_bytes()[: archive.stat().st_size // 2])
    with pytest.raises(ArchiveError, match="truncated or corrupt"):
        import_archive(truncated, target)
    assert target.versions() == []


def test_a_file_that_is_not_an_export_is_refused(target, tmp_path):
    other = tmp_path / "other.tar.gz"
    with tarfile.open(other, "w:gz") as tar:
        info = tarfile.TarInfo("readme.txt")
        tar.addfile(info, io.BytesIO(b""))
    with pytest.raises(ArchiveError, match="not a model export"):
        import_archive(other, target)
    not_gzip = tmp_path / "plain.tar.gz"
    not_gzip.write_bytes(gzip.compress(b"hello")[:5])
    with pytest.raises(ArchiveError):
        import_archive(not_gzip, target)


def test_cli_export_then_import(exported, tmp_path):
    from amlops.cli.main import main

    uri = f"sqlite:///{tmp_path / 'cli-target' / 'mlflow.db'}"
    archive = tmp_path / "cli.tar.gz"
    assert main(["models", "export", "production", "--out", str(archive)]) == 0
    assert main(["models", "import", str(archive), "--registry-uri", uri, "--promote"]) == 0
    target = Registry(ProjectSettings().model_copy(update={"tracking_uri": uri}))
    assert target.production().tags["imported_from_version"] == "1"
    tampered = _rewrite(
        archive, tmp_path / "bad.tar.gz", lambda name, data: data + b"x" if name == "model/MLmodel" else data
    )
    assert main(["models", "import", str(tampered), "--registry-uri", uri]) == 2


def test_credentials_are_redacted_from_the_recorded_source():
    with_password = "https://user:secret@host/path?sig=abc&x=1"  # pragma: allowlist secret
    assert redact_uri(with_password) == "https://host/path?sig=***&x=1"
    assert redact_uri("sqlite:////tmp/x.db") == "sqlite:////tmp/x.db"
