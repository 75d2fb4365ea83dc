"""What every model registry offers the lifecycle: the :class:`ModelRegistry` protocol and its :class:`Version`.

The MLflow adapter (:mod:`amlops.registry.mlflow`) is the local registry; :mod:`amlops.azure.registry` wraps the
workspace's. Both keep the same tags (:mod:`amlops.core.tags`), so the lifecycle code works on either.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from amlops.core.errors import BadInputError
from amlops.core.settings import PRODUCTION_ALIAS, ProjectSettings
from amlops.core.tags import (
    METRIC_TAG_PREFIX,
    PRODUCTION_TAG,
    RETIRED_AT_TAG,
    RETIRED_BY_TAG,
    RETIRED_REASON_TAG,
    RETIRED_TAG,
)


class VersionNotFoundError(BadInputError, LookupError):
    """The registry has no such model version."""


class RetiredVersionError(BadInputError, LookupError):
    """The version is retired: it may not be deployed or promoted (``models unretire`` undoes it)."""

    def __init__(self, version: Version):
        self.version = version
        tags = version.tags
        super().__init__(
            f"{version.name} version {version.version} is retired and may not be deployed or promoted: "
            f"{tags.get(RETIRED_REASON_TAG) or 'no reason recorded'} (retired by {tags.get(RETIRED_BY_TAG, '?')} at "
            f"{tags.get(RETIRED_AT_TAG, '?')}; `python -m amlops models unretire {version.name}:{version.version}` "
            "undoes it)"
        )


@dataclass(frozen=True)
class Version:
    """A registered model version as the rest of the package sees it."""

    name: str
    version: str
    run_id: str | None
    source: str
    tags: dict[str, str] = field(default_factory=dict)
    aliases: tuple[str, ...] = ()
    created_ms: int = 0

    @property
    def in_production(self) -> bool:
        """Whether this version carries the production marker (alias, or tag where aliases are unsupported)."""
        return PRODUCTION_ALIAS in self.aliases or self.tags.get(PRODUCTION_TAG) == "true"

    @property
    def retired(self) -> bool:
        """Whether the version is retired (not to be served)."""
        return self.tags.get(RETIRED_TAG) == "true"

    @property
    def metrics(self) -> dict[str, float]:
        """Holdout metrics recorded as ``metric.<name>`` tags at registration."""
        return {k[len(METRIC_TAG_PREFIX) :]: float(v) for k, v in self.tags.items() if k.startswith(METRIC_TAG_PREFIX)}


class ModelRegistry(Protocol):
    """A model registry as the lifecycle uses it: local MLflow (``target == "local"``) or the Azure ML workspace."""

    #: The registered model's name.
    name: str
    #: ``local`` or ``azure``: which endpoints can serve its versions.
    target: str
    settings: ProjectSettings

    @property
    def uri(self) -> str:
        """The registry as events name it, without credentials."""

    def get(self, version: str) -> Version:
        """One version by number (raises :class:`VersionNotFoundError`)."""

    def versions(self) -> list[Version]:
        """Every version, newest first."""

    def production(self) -> Version | None:
        """The version carrying the production marker, or ``None``."""

    def set_tags(self, version: str, tags: dict[str, str]) -> None:
        """Add or replace tags on a version."""

    def promote(self, version: str) -> None:
        """Move the production marker to ``version`` (refused for a retired one)."""

    def download(self, version: str, dest: Path) -> Path:
        """Copy a version's MLflow model folder to ``dest`` and return it."""

    def register_folder(self, folder: Path, tags: dict[str, str], description: str = "") -> Version:
        """Register a model folder that no run of this registry produced (an import)."""
