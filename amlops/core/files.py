"""Small helpers for the JSON files that steps hand to each other."""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any


def write_json(path: Path, content: Any) -> Path:
    """Write ``content`` as indented JSON, creating parent folders."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(content, indent=2, sort_keys=True) + "\n")
    return path


def read_json(path: Path) -> Any:
    """Read a JSON file written by another step, naming the file when it is missing."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: missing; was the step that writes it run first?")
    return json.loads(path.read_text())


@contextlib.contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """An exclusive lock between processes on this machine, held for the ``with`` block."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


#: What a copy of the project needs to run the lifecycle (the code comes from the installed package): the doc's
#: configuration files, the entry scripts, the data and the environments.
PROJECT_FILES = (
    "sklearn.runconfig",
    "myenv.yml",
    "inferenceConfig.yml",
    "deploymentConfig.yml",
    "deploymentConfig.local.yml",
    "deploymentConfig.production.yml",
    "score.py",
    "train.py",
    "contract.yml",
    "pyproject.toml",
    "data",
    "environments",
)


def copy_project(source: Path, dest: Path) -> Path:
    """Copy a project's :data:`PROJECT_FILES` from ``source`` into ``dest`` (a fresh project root)."""
    import shutil

    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    for name in PROJECT_FILES:
        path = Path(source) / name
        if path.is_dir():
            shutil.copytree(path, dest / name)
        elif path.exists():
            shutil.copy2(path, dest / name)
    return dest


def content_version(*parts: bytes | str) -> str:
    """A version derived from content: the same content gives the same version, any change a new one.

    Re-creating an entity under an existing version with other content is a conflict in Azure ML; a version
    that follows the content never conflicts and is never bumped by hand.
    """
    digest = hashlib.sha256()
    for part in parts:
        data = part.encode() if isinstance(part, str) else part
        digest.update(len(data).to_bytes(8, "big") + data)
    return digest.hexdigest()[:16]


def folder_content(folder: str | Path) -> bytes:
    """Every file of a folder, path and bytes, in a fixed order (compiled Python files left out)."""
    folder = Path(folder)
    files = sorted(p for p in folder.rglob("*") if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc")
    return b"".join(str(p.relative_to(folder)).encode() + b"\0" + p.read_bytes() for p in files)
