"""The Azure ML workspace and the credentials to reach it, both checked before any operation.

The workspace is looked up in this order:

1. ``--workspace-config PATH`` (or ``AMLOPS_AZURE_WORKSPACE_CONFIG``): a ``config.json`` as Azure ML studio
   downloads it (``{"subscription_id": ..., "resource_group": ..., "workspace_name": ...}``);
2. the environment variables ``AZUREML_SUBSCRIPTION_ID``, ``AZUREML_RESOURCE_GROUP``, ``AZUREML_WORKSPACE_NAME``;
3. ``.azureml/config.json``, ``aml_config/config.json`` or ``config.json`` in the project root or a folder above it,
   as ``MLClient.from_config`` looks;
4. on an Azure ML compute instance, the instance's own workspace, as its environment names it
   (:func:`amlops.core.machine.instance_workspace`: the preset ``MLFLOW_TRACKING_URI``, checked against
   ``CI_RESOURCE_GROUP`` and ``CI_WORKSPACE``).

Credentials come from ``DefaultAzureCredential`` with the interactive browser excluded, and with the managed
identity excluded unless the host says it has one (``AZURE_CLIENT_ID``, ``IDENTITY_ENDPOINT``, ``MSI_ENDPOINT``
or ``AMLOPS_AZURE_USE_MANAGED_IDENTITY=true``), so that a laptop never probes the instance metadata address. A
token is requested, with a deadline, before any operation: without credentials the command fails within seconds
with a message naming what is missing and how to provide it. Nothing here ever prompts.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from amlops.core import machine
from amlops.core.azure_settings import AzureSettings
from amlops.core.config import ConfigError
from amlops.core.settings import ProjectSettings
from amlops.registry import tracking

log = logging.getLogger(__name__)

WORKSPACE_VARIABLES = ("AZUREML_SUBSCRIPTION_ID", "AZUREML_RESOURCE_GROUP", "AZUREML_WORKSPACE_NAME")
CONFIG_FIELDS = ("subscription_id", "resource_group", "workspace_name")
#: Where a workspace's config.json is looked for, in this order, in a folder and each folder above it.
CONFIG_FILES = (".azureml/config.json", "aml_config/config.json", "config.json")
#: Environment variables that say the host has a managed identity to use.
MANAGED_IDENTITY_VARIABLES = ("AZURE_CLIENT_ID", "IDENTITY_ENDPOINT", "MSI_ENDPOINT")
#: Azure Resource Manager, which every workspace operation goes through.
ARM_SCOPE = "https://management.azure.com/.default"

HOW_TO_PROVIDE_CREDENTIALS = """provide one of:
  - a developer login: `az login` (Azure CLI), `azd auth login` or `Connect-AzAccount` (PowerShell);
  - a service principal (CI): AZURE_TENANT_ID, AZURE_CLIENT_ID and AZURE_CLIENT_SECRET (or
    AZURE_CLIENT_CERTIFICATE_PATH); in Azure DevOps, run the command in an AzureCLI@2 task instead;
  - workload identity: AZURE_FEDERATED_TOKEN_FILE with AZURE_CLIENT_ID and AZURE_TENANT_ID;
  - the managed identity of an Azure host: AZURE_CLIENT_ID (user-assigned) or AMLOPS_AZURE_USE_MANAGED_IDENTITY=true."""


class AzureSetupError(ConfigError):
    """No workspace or no credentials: the message says what is missing and how to provide it."""


@dataclass(frozen=True)
class WorkspaceRef:
    """Which workspace to use, and where that was found."""

    subscription_id: str
    resource_group: str
    workspace_name: str
    source: str

    def __str__(self) -> str:
        return f"{self.workspace_name} (resource group {self.resource_group}; from {self.source})"


def _how_to_configure(root: Path) -> str:
    return (
        "no Azure ML workspace is configured; provide one of:\n"
        f"  - config.json in the project root ({root}) or a folder above it, as Azure ML studio downloads it "
        "(workspace overview → "
        'Download config.json): {"subscription_id": "...", "resource_group": "...", "workspace_name": "..."};\n'
        "  - --workspace-config PATH (or AMLOPS_AZURE_WORKSPACE_CONFIG=PATH) pointing at such a file;\n"
        f"  - the environment variables {', '.join(WORKSPACE_VARIABLES)}."
    )


def read_workspace_config(path: Path) -> WorkspaceRef:
    """Read a studio-style ``config.json``, naming the file and any missing field."""
    path = Path(path)
    try:
        content = json.loads(path.read_text())
    except FileNotFoundError:
        raise AzureSetupError(f"{path}: workspace config file not found") from None
    except (OSError, ValueError) as error:
        raise AzureSetupError(f"{path}: not a readable JSON workspace config: {error}") from None
    if not isinstance(content, dict):
        raise AzureSetupError(f"{path}: expected a JSON object with {', '.join(CONFIG_FIELDS)}")
    missing = [name for name in CONFIG_FIELDS if not str(content.get(name) or "").strip()]
    if missing:
        raise AzureSetupError(f"{path}: field(s) {', '.join(missing)} missing or empty (expected {CONFIG_FIELDS})")
    return WorkspaceRef(*(str(content[name]).strip() for name in CONFIG_FIELDS), source=str(path))


def find_workspace(
    config_path: Path | None = None,
    *,
    root: Path | None = None,
    environ: Mapping[str, str] | None = None,
    settings: AzureSettings | None = None,
) -> WorkspaceRef:
    """The workspace to use: an explicit config file, the environment, a ``config.json``, or the compute instance's.

    Raises:
        AzureSetupError: naming what is missing and every way to provide it.
    """
    environ = os.environ if environ is None else environ
    settings = settings or AzureSettings()
    root = Path(root or ProjectSettings().root)
    explicit = config_path or settings.workspace_config
    if explicit:
        return read_workspace_config(Path(explicit))
    values = {name: (environ.get(name) or "").strip() for name in WORKSPACE_VARIABLES}
    if any(values.values()):
        missing = [name for name, value in values.items() if not value]
        if missing:
            raise AzureSetupError(f"workspace environment variables incomplete: {', '.join(missing)} not set")
        return WorkspaceRef(*values.values(), source="environment variables")
    found = find_config_file(root)
    if found:
        return read_workspace_config(found)
    instance = machine.instance_workspace(environ)
    if instance:
        return WorkspaceRef(*instance, source=f"compute instance {machine.compute_instance(environ)}")
    raise AzureSetupError(_how_to_configure(root))


def find_config_file(start: Path) -> Path | None:
    """The nearest ``config.json`` at or above ``start``, looked for as ``MLClient.from_config`` does.

    Each of ``.azureml/config.json``, ``aml_config/config.json`` and ``config.json`` is searched for from ``start``
    up to the file system's root, in that order: one kept in a compute instance's user folder serves every clone
    below it.
    """
    start = Path(start).resolve()
    for name in CONFIG_FILES:
        for folder in (start, *start.parents):
            if (folder / name).is_file():
                return folder / name
    return None


def managed_identity_allowed(environ: Mapping[str, str] | None = None, settings: AzureSettings | None = None) -> bool:
    """Whether to let the credential chain try a managed identity (never on a plain laptop or CI agent)."""
    environ = os.environ if environ is None else environ
    settings = settings or AzureSettings()
    return settings.use_managed_identity or any(environ.get(name) for name in MANAGED_IDENTITY_VARIABLES)


def make_credential(settings: AzureSettings | None = None, environ: Mapping[str, str] | None = None) -> Any:
    """``DefaultAzureCredential`` that never prompts and never probes a managed identity the host does not have."""
    from azure.identity import DefaultAzureCredential

    settings = settings or AzureSettings()
    return DefaultAzureCredential(
        exclude_interactive_browser_credential=True,
        exclude_managed_identity_credential=not managed_identity_allowed(environ, settings),
        process_timeout=max(1, min(10, int(settings.credential_timeout))),
    )


def check_credential(credential: Any, timeout: float) -> None:
    """Request an Azure Resource Manager token, waiting at most ``timeout`` seconds.

    The token itself is discarded, never logged.

    Raises:
        AzureSetupError: no credential produced a token, or none answered in time.
    """
    outcome: dict[str, BaseException] = {}

    def attempt() -> None:
        try:
            credential.get_token(ARM_SCOPE)
        except Exception as error:  # noqa: BLE001 - any failure is reported to the user below, with its message
            outcome["error"] = error

    worker = threading.Thread(target=attempt, name="azure-credential-check", daemon=True)
    worker.start()
    worker.join(timeout)
    if worker.is_alive():
        raise AzureSetupError(
            f"no Azure credential produced a token within {timeout:g} s (AMLOPS_AZURE_CREDENTIAL_TIMEOUT); "
            f"check the network, or {HOW_TO_PROVIDE_CREDENTIALS}"
        )
    if "error" in outcome:
        raise AzureSetupError(f"no Azure credentials: {_attempts(outcome['error'])}\n{HOW_TO_PROVIDE_CREDENTIALS}")


def _attempts(error: BaseException) -> str:
    """The credential chain's error, one attempted credential a line, without the troubleshooting boilerplate."""
    lines = [" ".join(line.split()) for line in str(error).splitlines()]
    tried = [line for line in lines if ":" in line.split(" ", 1)[0] and not line.startswith("Attempted")]
    if not tried:
        return " ".join(lines)[:500]
    return "DefaultAzureCredential tried\n" + "\n".join(f"    {line[:240]}" for line in tried)


def check_tracking_credentials(uri: str, settings: AzureSettings | None = None) -> None:
    """Before MLflow talks to an ``azureml://`` tracking URI: fail fast when no credential produces a token.

    Without one, azureml-mlflow falls back to an interactive browser or device-code login, where a command, a test
    or a CI job would wait for a person.

    Raises:
        AzureSetupError: no credential produced a token in time, with how to provide one.
    """
    settings = settings or AzureSettings()
    logging.getLogger("azure.identity").setLevel(logging.ERROR)
    log.debug("checking Azure credentials before using the tracking URI %s", uri.split("?")[0])
    check_credential(make_credential(settings), settings.credential_timeout)


def install_tracking_check() -> None:
    """Let MLflow use ``azureml://`` tracking URIs, each after :func:`check_tracking_credentials` (once per process)."""
    tracking.CREDENTIAL_CHECKS["azureml:"] = check_tracking_credentials


def connect(
    config_path: Path | None = None,
    *,
    settings: AzureSettings | None = None,
    project: ProjectSettings | None = None,
) -> Any:
    """An ``MLClient`` for the configured workspace, after checking that credentials work.

    Raises:
        AzureSetupError: no workspace configured, or no credentials: fast, with how to fix it.
    """
    settings = settings or AzureSettings()
    project = project or ProjectSettings()
    workspace = find_workspace(config_path, root=project.root, settings=settings)
    # The credential chain logs each failed attempt as a warning; the error below says it all, once.
    logging.getLogger("azure.identity").setLevel(logging.ERROR)
    credential = make_credential(settings)
    check_credential(credential, settings.credential_timeout)

    from azure.ai.ml import MLClient

    log.info("workspace %s", workspace)
    return MLClient(
        credential=credential,
        subscription_id=workspace.subscription_id,
        resource_group_name=workspace.resource_group,
        workspace_name=workspace.workspace_name,
        enable_telemetry=False,
    )


class OfflineCredential:
    """A credential that refuses every token: whatever works with it needs no Azure access."""

    def get_token(self, *scopes: str, **kwargs: Any) -> Any:
        """Refuse."""
        from azure.core.exceptions import ClientAuthenticationError

        raise ClientAuthenticationError("offline client: no Azure access")

    def close(self) -> None:
        """Nothing to release."""


def offline_client() -> Any:
    """An ``MLClient`` for offline checks (``jobs.validate``): placeholder workspace, a credential that refuses."""
    from azure.ai.ml import MLClient

    return MLClient(
        credential=OfflineCredential(),
        subscription_id="00000000-0000-0000-0000-000000000000",
        resource_group_name="offline",
        workspace_name="offline",
        enable_telemetry=False,
    )
