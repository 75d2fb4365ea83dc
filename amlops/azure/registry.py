"""The workspace's model registry and the records of Azure releases, rollbacks and clean-ups."""

from __future__ import annotations

import logging
import shutil
import tempfile
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from amlops.azure import operations, rollout
from amlops.core.azure_settings import AzureSettings
from amlops.core.lineage import build_id, now
from amlops.core.names import STAGES
from amlops.core.settings import ProjectSettings
from amlops.lifecycle.retirement import Say
from amlops.registry.base import Version, VersionNotFoundError
from amlops.registry.events import emit
from amlops.registry.records import DeploymentRecord, ensure_servable, record_deployment

log = logging.getLogger(__name__)


def azure_serving(client: Any, endpoint_name: str) -> dict[str, tuple[str, str, int]]:
    """``{deployment: (model name, version, traffic %)}`` of an Azure endpoint; empty if it does not exist."""
    try:
        endpoint = client.online_endpoints.get(endpoint_name)
        deployments = list(client.online_deployments.list(endpoint_name))
    except Exception as error:
        if operations.is_missing(error):
            return {}
        raise
    traffic = {name: int(share) for name, share in (endpoint.traffic or {}).items()}
    found = {}
    for item in deployments:
        try:
            model, version = rollout.model_of(SimpleNamespace(name=item.name, model=getattr(item, "model", None)))
        except operations.AzureOperationError:
            continue
        found[item.name] = (model, version, traffic.get(item.name, 0))
    return found


def azure_endpoints(client: Any, registry: Any = None, settings: ProjectSettings | None = None) -> list[dict[str, Any]]:
    """Each release stage's Azure endpoint, its deployments, their traffic and the version each serves."""
    settings = settings or ProjectSettings()
    registry = registry or AzureRegistry(client, settings=settings)
    rows = []
    for stage in STAGES.values():
        name = AzureSettings().endpoint_name(stage.name, settings)
        serving = azure_serving(client, name)
        if not serving:
            rows.append({"target": "azure", "stage": stage.name, "endpoint": name, "status": "no deployments"})
            continue
        url = rollout.endpoint_details(client, name)["scoring_uri"]
        for deployment, (model, version, share) in sorted(serving.items(), key=lambda item: -item[1][2]):
            try:
                retired = registry.get(version).retired if model == registry.name else False
            except LookupError:
                retired = False
            rows.append(
                {
                    "target": "azure",
                    "stage": stage.name,
                    "endpoint": name,
                    "deployment": deployment,
                    "model": model,
                    "version": version,
                    "status": "live" if share > 0 else "standby (0% traffic)",
                    "traffic": share,
                    "url": url,
                    "retired": retired,
                }
            )
    return rows


class AzureRegistry:
    """The workspace's model registry (``MLClient.models``), with the ``Registry`` methods governance uses.

    The same tags, the same production marker (the ``production`` tag), the same refusals as locally.
    """

    #: Its versions are served by Azure ML online endpoints.
    target = "azure"

    def __init__(self, client: Any, name: str | None = None, settings: ProjectSettings | None = None):
        self.client = client
        self.settings = settings or ProjectSettings()
        self.name = name or self.settings.model_name

    @property
    def uri(self) -> str:
        """The workspace, as events name the registry."""
        return f"azureml://workspaces/{getattr(self.client, 'workspace_name', None) or '?'}"

    def get(self, version: str) -> Version:
        """One version (tolerates model entities without tags)."""
        try:
            model = self.client.models.get(name=self.name, version=str(version))
        except Exception as error:
            if operations.is_missing(error):
                raise VersionNotFoundError(f"{self.name} has no version {version!r} in the workspace") from None
            raise
        return operations.as_version(model, self.name, str(version))

    def versions(self) -> list[Version]:
        """Every version, newest first."""
        return operations.model_versions(self.client, self.name)

    def production(self) -> Version | None:
        """The version tagged ``production=true``."""
        return operations.production_version(self.client, self.name)

    def set_tags(self, version: str, tags: dict[str, str]) -> None:
        """Add or replace tags on a version."""
        operations.tag_model(self.client, self.name, version, tags)

    def promote(self, version: str, say: Say = log.info) -> None:
        """Move the production marker (refused for a retired version) and emit ``model.promoted``."""
        target = ensure_servable(self.get(version))
        previous = self.production()
        operations.promote(self.client, self.name, target.version, say=say)
        if previous is None or previous.version != target.version:
            emit(
                "model.promoted",
                self.name,
                target.version,
                {"previous_version": previous.version if previous else None},
                settings=self.settings,
                registry=self.uri,
            )

    def download(self, version: str, dest: Path) -> Path:
        """Copy a version's MLflow model folder to ``dest`` (replaced if it exists) and return it, as locally."""
        dest = Path(dest)
        with tempfile.TemporaryDirectory() as scratch:
            folder = operations.download_model(self.client, self.name, str(version), Path(scratch))
            shutil.rmtree(dest, ignore_errors=True)
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(folder, dest)
        return dest

    def register_folder(self, folder: Path, tags: dict[str, str], description: str = "") -> Version:
        """Register an MLflow model folder that no job of this workspace produced (an import)."""
        created = operations.register_model_folder(self.client, self.name, Path(folder), tags, description)
        return operations.as_version(created)


def record_release(
    registry: AzureRegistry,
    version: str,
    *,
    stage: str,
    endpoint: str,
    deployment: str,
    before: dict[str, tuple[str, str, int]],
    result: Any = None,
    error: BaseException | None = None,
) -> None:
    """Record an Azure release on the versions it touched: the new one, and the ones it replaced or kept."""
    if error is not None:
        detail = f"{type(error).__name__}: {' '.join(str(error).split())}"
        record_deployment(
            registry,
            version,
            DeploymentRecord("azure", endpoint, deployment, None, "failed", now(), stage, 0, build_id(), detail),
        )
        return
    for old in [*result.deleted, *(name for name in result.previous if name not in result.deleted)]:
        model, old_version, _ = before.get(old, (None, None, 0))
        if model != registry.name:
            continue
        deleted = old in result.deleted
        record_deployment(
            registry,
            old_version,
            DeploymentRecord(
                "azure",
                endpoint,
                old,
                result.scoring_uri,
                "undeployed" if deleted else "succeeded",
                now(),
                stage,
                0 if deleted else int(result.traffic.get(old, 0)),
                build_id(),
                f"{'deleted' if deleted else 'kept for rollback'}: {deployment} (v{version}) took its traffic",
            ),
        )
    record_deployment(
        registry,
        version,
        DeploymentRecord(
            "azure",
            endpoint,
            deployment,
            result.scoring_uri,
            "succeeded",
            now(),
            stage,
            int(result.traffic.get(deployment, 0)),
            build_id(),
            f"traffic in steps: {' → '.join(f'{share}%' for share in result.traffic_steps)}"
            if len(result.traffic_steps) > 1
            else None,
        ),
    )


def record_rollback(
    registry: AzureRegistry,
    *,
    stage: str,
    endpoint: str,
    url: str | None,
    target: str,
    before: dict[str, tuple[str, str, int]],
) -> None:
    """Record a rollback: ``rolled-back`` on what served before, ``succeeded`` (100%) on what serves now."""
    for name, (model, version, share) in before.items():
        if name != target and share > 0 and model == registry.name:
            record_deployment(
                registry,
                version,
                DeploymentRecord(
                    "azure",
                    endpoint,
                    name,
                    url,
                    "rolled-back",
                    now(),
                    stage,
                    0,
                    build_id(),
                    f"traffic back to {target}",
                ),
            )
    model, version, _ = before.get(target, (None, None, 0))
    if model == registry.name:
        record_deployment(
            registry,
            version,
            DeploymentRecord(
                "azure", endpoint, target, url, "succeeded", now(), stage, 100, build_id(), "rollback target"
            ),
        )


def record_cleanup(
    registry: AzureRegistry,
    *,
    stage: str,
    endpoint: str,
    before: dict[str, tuple[str, str, int]],
    deleted: list[str],
) -> None:
    """Record ``undeployed`` on the versions whose idle (0%) deployments were deleted (``azure cleanup``).

    ``before`` is :func:`azure_serving` read before the deletion.
    """
    for name in deleted:
        model, version, _ = before.get(name, (None, None, 0))
        if model == registry.name:
            record_deployment(
                registry,
                version,
                DeploymentRecord(
                    "azure", endpoint, name, None, "undeployed", now(), stage, 0, build_id(), "idle deployment deleted"
                ),
            )
