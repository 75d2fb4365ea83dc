"""Move a registered model between registries (export from dev, import into prod).

An export is one ``.tar.gz`` archive::

    model/...          the MLflow model folder, as registered
    metadata.json      name, version, tags (metrics, lineage), description, source registry, export time
    MANIFEST.sha256    sha256 of every other file, ``sha256sum`` format

``import`` verifies every checksum before registering anything, refuses a tampered or truncated archive
with a message naming what is wrong, keeps the lineage tags, records where the model came from, and
leaves the target's production marker alone unless asked.
"""

from __future__ import annotations

import json
import logging
import re
import tarfile
import tempfile
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from amlops.core.errors import BadInputError
from amlops.core.tags import PRODUCTION_TAG, SOURCE_ONLY_PREFIXES
from amlops.ml.data import sha256_file

log = logging.getLogger(__name__)

FORMAT = "amlops-model-export/1"
MODEL_DIR = "model"
METADATA_FILE = "metadata.json"
MANIFEST_FILE = "MANIFEST.sha256"
#: Tags recorded on an imported version, naming its origin.
ORIGIN_TAGS = ("imported_from_registry", "imported_from_name", "imported_from_version", "import_archive_sha256")
#: Tags that describe the version's place in its source registry, meaningless in the target.
SOURCE_ONLY_TAGS = (PRODUCTION_TAG, "replaced_version")


class ArchiveError(BadInputError, ValueError):
    """The archive is not a complete, untampered model export."""


@dataclass(frozen=True)
class ImportedVersion:
    """What an import registered."""

    name: str
    version: str
    source_name: str
    source_version: str
    promoted: bool


def redact_uri(uri: str) -> str:
    """A registry URI without credentials (``user:password@`` or query-string tokens)."""
    uri = re.sub(r"//[^/@]+@", "//", uri)
    return re.sub(r"([?&][^=]*(?:token|key|sig|secret|password)[^=]*=)[^&]*", r"\1***", uri, flags=re.IGNORECASE)


def _manifest(folder: Path) -> str:
    lines = []
    for path in sorted(p for p in folder.rglob("*") if p.is_file() and p.name != MANIFEST_FILE):
        lines.append(f"{sha256_file(path)}  {path.relative_to(folder).as_posix()}")
    return "\n".join(lines) + "\n"


def export_version(registry, version: str, archive: Path) -> Path:
    """Write a registered version (files, metrics, lineage, checksums) to a ``.tar.gz`` archive.

    Args:
        registry: The source registry: :class:`amlops.registry.mlflow.Registry` (MLflow) or
            :class:`amlops.azure.registry.AzureRegistry` (a workspace).
        version: The version to export.
        archive: Path of the archive to write.
    """
    found = registry.get(version)
    archive = Path(archive)
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch) / "export"
        registry.download(found.version, folder / MODEL_DIR)
        metadata = {
            "format": FORMAT,
            "name": found.name,
            "version": found.version,
            "tags": found.tags,
            "source_registry": registry.uri,
            "source_run_id": found.run_id,
            "exported_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        }
        (folder / METADATA_FILE).write_text(json.dumps(metadata, indent=2, sort_keys=True) + "\n")
        (folder / MANIFEST_FILE).write_text(_manifest(folder))
        archive.parent.mkdir(parents=True, exist_ok=True)
        with tarfile.open(archive, "w:gz") as tar:
            for path in sorted(folder.rglob("*")):
                tar.add(path, arcname=path.relative_to(folder).as_posix(), recursive=False)
    log.info("exported %s v%s to %s (sha256 %s)", found.name, found.version, archive, sha256_file(archive)[:12])
    return archive


def _extract(archive: Path, dest: Path) -> None:
    try:
        with tarfile.open(archive, "r:gz") as tar:
            for member in tar.getmembers():
                if not (member.isfile() or member.isdir()):
                    raise ArchiveError(f"{archive}: {member.name!r} is not a regular file or folder")
            tar.extractall(dest, filter="data")
    except (tarfile.TarError, EOFError, OSError) as error:
        raise ArchiveError(f"{archive}: cannot be read as a .tar.gz export (truncated or corrupt?): {error}") from None


def verify(folder: Path, archive: Path) -> dict:
    """Check an extracted export against its manifest and return its metadata.

    Raises:
        ArchiveError: naming the first missing, extra or altered file.
    """
    manifest = folder / MANIFEST_FILE
    if not manifest.is_file() or not (folder / METADATA_FILE).is_file():
        raise ArchiveError(f"{archive}: not a model export ({MANIFEST_FILE} or {METADATA_FILE} missing)")
    expected = {}
    for line in manifest.read_text().splitlines():
        digest, _, name = line.partition("  ")
        expected[name] = digest
    present = {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file() and p != manifest}
    if missing := sorted(expected.keys() - present):
        raise ArchiveError(f"{archive}: file(s) listed in the manifest are missing: {missing}")
    if extra := sorted(present - expected.keys()):
        raise ArchiveError(f"{archive}: file(s) not in the manifest: {extra}")
    for name, digest in expected.items():
        if sha256_file(folder / name) != digest:
            raise ArchiveError(f"{archive}: checksum mismatch for {name}: the archive was altered")
    metadata = json.loads((folder / METADATA_FILE).read_text())
    if metadata.get("format") != FORMAT:
        raise ArchiveError(f"{archive}: unsupported export format {metadata.get('format')!r} (expected {FORMAT})")
    return metadata


def import_archive(archive: Path, registry, *, promote: bool = False) -> ImportedVersion:
    """Verify an export and register it in ``registry`` with its lineage and origin.

    Args:
        archive: A file written by :func:`export_version`.
        registry: The target registry: :class:`amlops.registry.mlflow.Registry` (MLflow) or
            :class:`amlops.azure.registry.AzureRegistry` (a workspace).
        promote: Also move the target's production marker to the imported version.
    """
    archive = Path(archive)
    if not archive.is_file():
        raise FileNotFoundError(f"{archive}: no such archive")
    digest = sha256_file(archive)
    done = next((v for v in registry.versions() if v.tags.get("import_archive_sha256") == digest), None)
    if done is not None:
        log.info("%s was already imported as %s v%s; nothing registered", archive, registry.name, done.version)
        if promote and not done.in_production:
            registry.promote(done.version)
        tags = done.tags
        return ImportedVersion(
            registry.name, done.version, tags["imported_from_name"], tags["imported_from_version"], promote
        )
    with tempfile.TemporaryDirectory() as scratch:
        folder = Path(scratch)
        _extract(archive, folder)
        metadata = verify(folder, archive)
        if metadata["name"] != registry.name:
            log.warning("importing %s as %s (the target registry's model name)", metadata["name"], registry.name)
        origin = {
            "imported_from_registry": metadata["source_registry"],
            "imported_from_name": metadata["name"],
            "imported_from_version": metadata["version"],
            "import_archive_sha256": digest,
        }
        # Deployment records and efficacy checks describe the source's endpoints; a retirement is kept (a retired
        # model stays retired wherever it goes).
        kept = {
            k: v
            for k, v in metadata["tags"].items()
            if k not in ORIGIN_TAGS + SOURCE_ONLY_TAGS and not k.startswith(SOURCE_ONLY_PREFIXES)
        }
        tags = kept | origin
        version = registry.register_folder(
            folder / MODEL_DIR, tags, description=f"imported from {metadata['name']} v{metadata['version']}"
        )
    if promote:
        registry.promote(version.version)
    log.info(
        "imported %s v%s as %s v%s%s",
        metadata["name"],
        metadata["version"],
        registry.name,
        version.version,
        " and promoted it to production" if promote else " (production marker untouched)",
    )
    return ImportedVersion(registry.name, version.version, metadata["name"], metadata["version"], promote)
