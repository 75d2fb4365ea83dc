"""Names the command line shows in its help and the rest of the package uses: no pydantic, nothing to read.

``python -m amlops --help`` imports this module rather than :mod:`amlops.core.settings`, so that listing the
commands costs little more than starting Python (``docs/performance.md``).
"""

from __future__ import annotations

from dataclasses import dataclass

#: The local endpoint that `deploy`, `serve` and `release --approve` use (production on this machine).
LOCAL_ENDPOINT = "local"


@dataclass(frozen=True)
class Stage:
    """A release stage on Azure: which deployment config drives it and what its endpoint is called."""

    name: str
    config_file: str
    description: str


#: The release stages (docs/azure.md). Each one's ``computeType`` picks the kind of endpoint: ACI → managed online
#: endpoint, AKS → Kubernetes online endpoint.
STAGES: dict[str, Stage] = {
    "preprod": Stage("preprod", "deploymentConfig.yml", "pre-production"),
    "prod": Stage("prod", "deploymentConfig.production.yml", "production"),
}
