"""Lineage: when, who, which build and which commit; and registry URIs without their credentials."""

from __future__ import annotations

import getpass
import json
import os
import re
import subprocess
from datetime import datetime, timezone
from pathlib import Path

#: Azure DevOps and GitHub Actions expose the build id under these names.
BUILD_ID_VARIABLES = ("BUILD_BUILDID", "GITHUB_RUN_ID")
#: CI variables naming who started a build, in order of preference, with the system that sets them.
CI_IDENTITY_VARIABLES = (
    ("BUILD_REQUESTEDFOREMAIL", "Azure DevOps"),
    ("BUILD_REQUESTEDFOR", "Azure DevOps"),
    ("GITHUB_ACTOR", "GitHub Actions"),
)
#: In a staged code folder (no ``.git``): the commit of the checkout it was copied from.
SOURCE_FILE = "amlops-source.json"


def now() -> str:
    """The current UTC time, to the second, ISO 8601."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def timestamp(seconds: float) -> str:
    """A POSIX time as UTC ISO 8601, to the second."""
    return datetime.fromtimestamp(seconds, timezone.utc).isoformat(timespec="seconds")


def who() -> str:
    """Who acts: the CI identity in a pipeline, the login name otherwise."""
    for variable, system in CI_IDENTITY_VARIABLES:
        if os.environ.get(variable):
            return f"{os.environ[variable]} (via {system})"
    try:
        return getpass.getuser()
    except (OSError, KeyError):
        return "unknown"


def build_id() -> str | None:
    """The CI build id (Azure DevOps or GitHub Actions), when running in one."""
    return next((os.environ[name] for name in BUILD_ID_VARIABLES if os.environ.get(name)), None)


def git_commit(root: Path) -> tuple[str, bool]:
    """The commit the code was at, and whether the working tree had uncommitted changes.

    Outside a git checkout, what :data:`SOURCE_FILE` recorded when the code was staged (an Azure ML job's code
    snapshot has no ``.git``); ``("uncommitted", True)`` without either, or before the first commit.
    """
    recorded = Path(root) / SOURCE_FILE
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, check=True, timeout=10
        ).stdout.strip()
        status = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=root,
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        if recorded.is_file():
            source = json.loads(recorded.read_text())
            return str(source["git_commit"]), bool(source["git_dirty"])
        return "uncommitted", True
    return sha, bool(status.strip())


def record_source(code: Path, root: Path) -> None:
    """Write :data:`SOURCE_FILE` into a staged code folder: the commit of ``root``, the checkout it was copied from."""
    commit, dirty = git_commit(root)
    path = Path(code) / SOURCE_FILE
    path.write_text(json.dumps({"git_commit": commit, "git_dirty": dirty}, indent=2, sort_keys=True) + "\n")


def redact_uri(uri: str) -> str:
    """A registry URI without credentials (``user:password@`` or query-string tokens)."""
    uri = re.sub(r"//[^/@]+@", "//", uri)
    return re.sub(r"([?&][^=]*(?:token|key|sig|secret|password)[^=]*=)[^&]*", r"\1***", uri, flags=re.IGNORECASE)
