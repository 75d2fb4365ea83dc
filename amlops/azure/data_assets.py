"""Training data as Azure ML data assets: register a CSV as a version, name one, read one back.

A data asset is referred to as ``azureml:<name>:<version>`` or ``azureml:<name>@latest``. A job submitted with
``@latest`` trains on the newest version at submission. A schedule does not follow ``@latest``: azure-ai-ml
resolves the label to a version when the schedule is created. So :func:`register` moves the training schedule
to each new version it registers, and the schedule's runs always show which version they trained on.

Downloads use public APIs only: the datastore's description from ``MLClient.datastores`` and the storage SDK.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from amlops.azure import translate
from amlops.azure.connection import make_credential
from amlops.azure.operations import AzureOperationError, Say, is_missing
from amlops.core.config import ConfigError
from amlops.core.settings import DataSettings, ProjectSettings
from amlops.ml import data

log = logging.getLogger(__name__)

#: ``azureml:<name>:<version>`` or ``azureml:<name>@latest``.
REFERENCE = re.compile(r"^azureml:(?P<name>[A-Za-z0-9][\w.-]*)(?::(?P<version>[\w.-]+)|@(?P<label>latest))$")
#: A path on a workspace datastore, short or long form (``azureml://subscriptions/.../datastores/...``).
DATASTORE_PATH = re.compile(
    r"^azureml://(?:subscriptions/[^/]+/resource[gG]roups/[^/]+/(?:providers/Microsoft\.MachineLearningServices/)?"
    r"workspaces/[^/]+/)?datastores/(?P<datastore>[^/]+)/paths/(?P<path>.+)$",
    re.IGNORECASE,
)
#: The tag holding a version's file sha256: registering the same file again returns that version.
SHA256_TAG = "sha256"


def is_reference(data: Any) -> bool:
    """Whether ``data`` names a data asset (``azureml:...``) rather than a local file."""
    return str(data).startswith("azureml:")


def parse_reference(reference: str) -> tuple[str, str | None]:
    """``(name, version)`` of a data asset reference; ``version`` is ``None`` for ``@latest``.

    Raises:
        ConfigError: another form, with the two accepted.
    """
    found = REFERENCE.match(str(reference).strip())
    if not found:
        raise ConfigError(f"data {reference!r}: expected azureml:<name>:<version> or azureml:<name>@latest")
    return found["name"], found["version"]


def pin(client: Any, reference: str) -> str:
    """The reference with ``@latest`` replaced by the version it names now (``azureml:<name>:<version>``)."""
    name, version = parse_reference(reference)
    if version is None:
        version = str(client.data.get(name=name, label="latest").version)
    return f"azureml:{name}:{version}"


@dataclass(frozen=True)
class CheckedFile:
    """A training CSV that met the contract when :func:`check_file` read it, and its sha256 then."""

    path: Path
    sha256: str


def check_file(path: Path, settings: ProjectSettings) -> CheckedFile:
    """Validate a training CSV against the contract, as ``data validate`` does.

    Raises:
        ConfigError: no such file.
        DataValidationError: naming the column and the rule.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: data file not found")
    data.validate(data.load_csv(path), settings.contract, min_rows=DataSettings().min_rows, source=str(path))
    return CheckedFile(path, _sha256(path))


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def register(
    client: Any,
    file: Path | CheckedFile,
    name: str,
    settings: ProjectSettings,
    *,
    description: str = "",
    say: Say = log.info,
) -> str:
    """Register a CSV file as the next version of data asset ``name`` (the SDK uploads it); return its reference.

    A path is validated against the contract first, as ``data validate`` does; a :class:`CheckedFile` only if the
    file changed since :func:`check_file` read it. Versions are numbered 1, 2, ... A file already registered under
    ``name`` (same sha256) is not registered again: its version is returned.

    Raises:
        DataValidationError: naming the column and the rule, before anything is uploaded.
    """
    from azure.ai.ml.constants import AssetTypes
    from azure.ai.ml.entities import Data

    if not (isinstance(file, CheckedFile) and _sha256(file.path) == file.sha256):
        file = check_file(file.path if isinstance(file, CheckedFile) else file, settings)
    path, sha256 = file.path, file.sha256
    try:
        versions = list(client.data.list(name=name))
    except Exception as error:
        if not is_missing(error):
            raise
        versions = []
    for existing in versions:
        if (existing.tags or {}).get(SHA256_TAG) == sha256:
            say(f"{path.name} is already azureml:{name}:{existing.version} (same sha256)")
            return f"azureml:{name}:{existing.version}"
    version = str(max((int(v.version) for v in versions if str(v.version).isdigit()), default=0) + 1)
    created = client.data.create_or_update(
        Data(
            name=name,
            version=version,
            path=str(path),
            type=AssetTypes.URI_FILE,
            description=description or f"training data ({path.name})",
            tags={SHA256_TAG: sha256, "file": path.name},
        )
    )
    say(f"registered data asset azureml:{created.name}:{created.version} ({path.name}, sha256 {sha256[:12]})")
    return f"azureml:{created.name}:{created.version}"


def component_reference(component: Any) -> str:
    """``azureml:<name>:<version>`` of a schedule's pipeline component, however the service returned it."""
    if not isinstance(component, str):
        return f"azureml:{component.name}:{component.version}"
    found = re.search(r"/components/(?P<name>[^/]+)/versions/(?P<version>[^/]+)$", component)
    return f"azureml:{found['name']}:{found['version']}" if found else component


def retarget_schedule(client: Any, project: translate.Project, reference: str, *, say: Say = log.info) -> str | None:
    """Point the training schedule (if there is one) at data asset ``reference``; its name, or ``None``.

    The schedule is rebuilt as ``publish`` builds it: same component, cron and enabled state, the new data.
    """
    name = translate.schedule_name(project)
    try:
        existing = client.schedules.get(name)
    except Exception as error:
        if not is_missing(error):
            raise
        return None
    job = translate.scheduled_pipeline_job(project, component_reference(existing.create_job.component), reference)
    cron = existing.trigger.expression
    schedule = translate.training_schedule(project, job, cron, enabled=bool(existing.is_enabled))
    client.schedules.begin_create_or_update(schedule).result()
    say(f"schedule {name} ({cron} UTC, {'enabled' if existing.is_enabled else 'disabled'}) now trains on {reference}")
    return name


def download(client: Any, reference: str, dest: Path, *, container_client: Callable | None = None) -> Path:
    """Download a data asset into ``dest`` and return its CSV file.

    Raises:
        AzureOperationError: the asset is not on a datastore, or is not a CSV file or a folder holding exactly one.
    """
    name, version = parse_reference(reference)
    asset = client.data.get(name=name, version=version) if version else client.data.get(name=name, label="latest")
    folder = download_datastore_path(client, str(asset.path), Path(dest), container_client=container_client)
    files = sorted(folder.rglob("*.csv")) if folder.is_dir() else [folder]
    if len(files) != 1:
        raise AzureOperationError(f"data asset {reference}: expected one CSV file, found {[f.name for f in files]}")
    return files[0]


def download_datastore_path(client: Any, uri: str, dest: Path, *, container_client: Callable | None = None) -> Path:
    """Download a file or folder of a workspace datastore (Azure Blob or ADLS Gen2); return its local copy.

    The datastore's own secret (account key or SAS token) is used when it has one; an identity-based datastore
    is read with the same credentials as every other Azure call.

    Args:
        client: An ``MLClient``.
        uri: ``azureml://datastores/<datastore>/paths/<path>`` (or the long form with the workspace).
        dest: Folder to download into.
        container_client: ``azure.storage.blob.ContainerClient`` or anything called the same way.
    """
    found = DATASTORE_PATH.match(uri)
    if not found:
        raise AzureOperationError(f"{uri}: not a datastore path (azureml://datastores/<name>/paths/<path>)")
    datastore = client.datastores.get(found["datastore"], include_secrets=True)
    container = getattr(datastore, "container_name", None) or getattr(datastore, "filesystem", None)
    if not container:
        raise AzureOperationError(
            f"datastore {found['datastore']} is of type {datastore.type}: only blob and ADLS Gen2 datastores are read"
        )
    credentials = datastore.credentials
    secret = getattr(credentials, "account_key", None) or getattr(credentials, "sas_token", None)
    if container_client is None:
        from azure.storage.blob import ContainerClient

        container_client = ContainerClient
    account_url = f"{datastore.protocol or 'https'}://{datastore.account_name}.blob.{datastore.endpoint}"
    blobs = container_client(account_url, container, credential=secret or make_credential())
    prefix = PurePosixPath(found["path"].rstrip("/"))
    names = [
        blob.name
        for blob in blobs.list_blobs(name_starts_with=str(prefix))
        if blob.name == str(prefix) or blob.name.startswith(f"{prefix}/")
    ]
    if not names:
        raise AzureOperationError(f"{uri}: no file there")
    for name in names:
        target = Path(dest) / PurePosixPath(name).relative_to(prefix.parent)
        target.parent.mkdir(parents=True, exist_ok=True)
        with target.open("wb") as stream:
            blobs.download_blob(name).readinto(stream)
    return Path(dest) / prefix.name
