"""Azure-only settings, read from ``AMLOPS_AZURE_``-prefixed environment variables.

Project-wide facts (the model's name, the experiment, the project root) stay in :mod:`amlops.core.settings`; this
adds only what the Azure target needs: the endpoint of each release stage and how to reach the workspace. The release
stages themselves are :data:`amlops.core.names.STAGES`.
"""

from __future__ import annotations

import re
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from amlops.core.config import ConfigError
from amlops.core.settings import ProjectSettings

#: Azure ML endpoint names: 3-32 characters, a letter first, then letters, digits and hyphens.
ENDPOINT_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9-]{1,30}[A-Za-z0-9]$")


class AzureSettings(BaseSettings):
    """Where the workspace is described and what the endpoints are called."""

    model_config = SettingsConfigDict(env_prefix="AMLOPS_AZURE_", extra="ignore")

    workspace_config: Path | None = Field(
        default=None, description="A studio-style config.json; default: config.json in the project root."
    )
    preprod_endpoint: str | None = Field(default=None, description="Default: <model name>-preprod.")
    prod_endpoint: str | None = Field(default=None, description="Default: <model name>-prod.")
    credential_timeout: float = Field(default=15.0, gt=0, description="Seconds to wait for a token before failing.")
    job_timeout: float = Field(
        default=3000.0,
        gt=0,
        description="Seconds a training run (build, notebook) waits for its pipeline job before failing; the job "
        "keeps running. Under an hour: CI logins and free CI jobs do not outlast one.",
    )
    use_managed_identity: bool = Field(
        default=False,
        description="Let DefaultAzureCredential try the host's managed identity (also on when AZURE_CLIENT_ID, "
        "IDENTITY_ENDPOINT or MSI_ENDPOINT is set).",
    )

    def endpoint_name(self, stage: str, project: ProjectSettings | None = None) -> str:
        """The endpoint name of a release stage (unique within the Azure region: set it per workspace)."""
        configured = {"preprod": self.preprod_endpoint, "prod": self.prod_endpoint}[stage]
        name = configured or f"{(project or ProjectSettings()).model_name}-{stage}"
        if not ENDPOINT_NAME.match(name):
            variable = f"AMLOPS_AZURE_{stage.upper()}_ENDPOINT"
            raise ConfigError(
                f"endpoint name {name!r} is not valid in Azure ML (3-32 letters, digits or hyphens, starting with a "
                f"letter); set {variable}"
            )
        return name
