"""One interface over the MLflow model registry: versions, lineage tags, the production marker."""

from __future__ import annotations

import logging
import shutil
from dataclasses import replace
from pathlib import Path

from amlops.core.lineage import redact_uri
from amlops.core.settings import PRODUCTION_ALIAS, ProjectSettings
from amlops.core.tags import PRODUCTION_TAG, REPLACED_VERSION_TAG
from amlops.registry import events, tracking
from amlops.registry.base import RetiredVersionError, Version, VersionNotFoundError

log = logging.getLogger(__name__)


class Registry:
    """The project's model registry (MLflow; a local SQLite file by default): a :class:`ModelRegistry`."""

    #: Its versions are served by local endpoints.
    target = "local"

    def __init__(self, settings: ProjectSettings | None = None):
        import mlflow

        self.settings = settings or ProjectSettings()
        tracking.configure(self.settings)
        self.client = mlflow.MlflowClient()
        self.name = self.settings.model_name

    def _version(self, mv) -> Version:
        return Version(
            name=mv.name,
            version=str(mv.version),
            run_id=mv.run_id,
            source=mv.source,
            tags=dict(mv.tags or {}),
            aliases=tuple(mv.aliases or ()),
            created_ms=int(mv.creation_timestamp or 0),
        )

    def _ensure_model(self) -> None:
        from mlflow.exceptions import MlflowException

        try:
            self.client.get_registered_model(self.name)
        except MlflowException:
            try:
                self.client.create_registered_model(self.name, description=self.settings.contract.description)
            except MlflowException:
                self.client.get_registered_model(self.name)  # created concurrently by another run

    def production(self) -> Version | None:
        """The version carrying the production marker, or ``None`` before the first promotion."""
        from mlflow.exceptions import MlflowException

        try:
            return self._version(self.client.get_model_version_by_alias(self.name, PRODUCTION_ALIAS))
        except MlflowException:
            pass  # no alias yet, or a registry without aliases: the tag decides
        # The tags are filtered here, not by the search: Azure ML's MLflow registry lists tag filters as unsupported,
        # and a service that ignored the clause would hand back the newest version as production.
        every = self.client.search_model_versions(f"name = '{self.name}'")
        tagged = [mv for mv in every if (mv.tags or {}).get(PRODUCTION_TAG) == "true"]
        return self._version(max(tagged, key=lambda mv: int(mv.version))) if tagged else None

    def get(self, version: str) -> Version:
        """One version by number.

        Raises:
            VersionNotFoundError: the model has no such version.
        """
        from mlflow.exceptions import MlflowException

        try:
            return self._version(self.client.get_model_version(self.name, str(version)))
        except MlflowException as error:
            if error.error_code != "RESOURCE_DOES_NOT_EXIST":
                raise
            raise VersionNotFoundError(f"{self.name} has no version {version!r} in this registry") from None

    def versions(self) -> list[Version]:
        """Every version of the model, newest first."""
        found = self.client.search_model_versions(f"name = '{self.name}'")
        # search_model_versions does not return aliases; read them from the registered model.
        aliases: dict[str, list[str]] = {}
        if found:
            for alias, version in (self.client.get_registered_model(self.name).aliases or {}).items():
                aliases.setdefault(str(version), []).append(alias)
        versions = [self._version(mv) for mv in found]
        versions = [replace(v, aliases=tuple(aliases.get(v.version, ()))) for v in versions]
        return sorted(versions, key=lambda v: int(v.version), reverse=True)

    def register(self, source: str, run_id: str | None, tags: dict[str, str], description: str = "") -> Version:
        """Create a new version from a model folder URI, with lineage and metric tags."""
        self._ensure_model()
        mv = self.client.create_model_version(
            self.name,
            source=source,
            run_id=run_id,
            tags={k: str(v) for k, v in tags.items()},
            description=description,
        )
        log.info("registry: registered %s version %s", self.name, mv.version)
        registered = self._version(mv)
        self._emit("model.registered", registered.version, {"source": source, "run_id": run_id})
        return registered

    def _emit(self, kind: str, version: str, details: dict) -> None:
        events.emit(kind, self.name, version, details, settings=self.settings, registry=self.uri)

    @property
    def uri(self) -> str:
        """The registry's tracking URI, without credentials (recorded in events)."""
        return redact_uri(self.settings.resolved_tracking_uri)

    def register_folder(self, folder: Path, tags: dict[str, str], description: str = "") -> Version:
        """Register a model folder that no run of this registry produced (an import).

        The files are logged as the artifacts of a run named ``import`` so the version has a durable source.
        """
        import mlflow

        with mlflow.start_run(run_name="import", tags={"step": "import"}) as active:
            mlflow.log_artifacts(str(folder), artifact_path="model")
            source = f"{active.info.artifact_uri}/model"
        return self.register(source, active.info.run_id, tags, description=description)

    def set_tags(self, version: str, tags: dict[str, str]) -> None:
        """Add or replace tags on a version."""
        for key, value in tags.items():
            self.client.set_model_version_tag(self.name, str(version), key, str(value))

    def promote(self, version: str) -> None:
        """Move the production marker to ``version``, recording the version it replaces.

        Raises:
            RetiredVersionError: the version is retired.
            VersionNotFoundError: no such version.
        """
        from mlflow.exceptions import MlflowException

        target = self.get(version)
        if target.retired:
            raise RetiredVersionError(target)
        previous = self.production()
        version = target.version
        self.client.set_model_version_tag(self.name, version, PRODUCTION_TAG, "true")
        try:
            self.client.set_registered_model_alias(self.name, PRODUCTION_ALIAS, version)
        except MlflowException as error:
            log.warning("registry: aliases unsupported here (%s); the %r tag marks production", error, PRODUCTION_TAG)
        if previous and previous.version != version:
            self.client.set_model_version_tag(self.name, previous.version, PRODUCTION_TAG, "false")
            self.client.set_model_version_tag(self.name, version, REPLACED_VERSION_TAG, previous.version)
        log.info(
            "registry: %s version %s is now %s (was %s)",
            self.name,
            version,
            PRODUCTION_ALIAS,
            previous.version if previous else "none",
        )
        if previous is None or previous.version != version:  # a no-op promotion is not an event
            self._emit("model.promoted", version, {"previous_version": previous.version if previous else None})

    def download(self, version: str, dest: Path) -> Path:
        """Copy a version's model folder to ``dest`` (replaced if it exists) and return it."""
        import mlflow.artifacts

        dest = Path(dest)
        if dest.exists():
            shutil.rmtree(dest)
        dest.parent.mkdir(parents=True, exist_ok=True)
        self.get(str(version))  # VersionNotFoundError, by name
        # Through the registry's download URI, not the version's ``source``: Azure ML's registry hands out a location
        # its artifact store reads, while a version registered through its models API has a datastore ``source``
        # that no MLflow artifact repository parses.
        uri = f"models:/{self.name}/{version}"
        fetched = Path(mlflow.artifacts.download_artifacts(artifact_uri=uri, dst_path=str(dest.parent / ".dl")))
        shutil.move(str(fetched), dest)
        shutil.rmtree(dest.parent / ".dl", ignore_errors=True)
        return dest
