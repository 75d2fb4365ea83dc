"""What this machine is: an Azure ML compute instance or not, and whether a folder sits on a network share.

An Azure ML compute instance keeps the user's files (``~/cloudfiles/code``) on an Azure Files share, where SQLite's
file locks are unreliable: the local registry then goes on the instance's own disk. Standard library only.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from collections.abc import Mapping
from pathlib import Path

#: Set by Azure ML on a compute instance, to the instance's name (azure-ai-ml checks it the same way).
COMPUTE_INSTANCE_VARIABLE = "CI_NAME"
#: The compute instance's own description of itself, ``key=value`` lines (``instance=<name>``, ...).
INSTANCE_FILE = Path("/mnt/azmnt/.nbvm")
#: Preset by Azure ML on a compute instance to its workspace's MLflow URI, which names the workspace in full:
#: ``azureml://<region>.api.azureml.ms/mlflow/v1.0/subscriptions/<id>/resourceGroups/<rg>/providers/...
#: Microsoft.MachineLearningServices/workspaces/<name>``.
TRACKING_VARIABLE = "MLFLOW_TRACKING_URI"
#: Set by Azure ML on a compute instance to its workspace's resource group and name (no subscription among them).
INSTANCE_WORKSPACE_VARIABLES = ("CI_RESOURCE_GROUP", "CI_WORKSPACE")
_WORKSPACE_ID = re.compile(
    r"/subscriptions/(?P<subscription>[^/]+)/resourceGroups/(?P<group>[^/]+)"
    r"/providers/Microsoft\.MachineLearningServices/workspaces/(?P<workspace>[^/?#]+)",
    re.IGNORECASE,
)
#: The kernel's table of mounted file systems.
MOUNTS = Path("/proc/mounts")
#: File system types on which SQLite's locking cannot be trusted.
NETWORK_FILESYSTEMS = frozenset({"cifs", "smb3", "smbfs", "nfs", "nfs4", "9p", "fuse.blobfuse", "fuse.blobfuse2"})


def compute_instance(environ: Mapping[str, str] | None = None, instance_file: Path | None = None) -> str | None:
    """The name of the Azure ML compute instance this runs on, or ``None`` elsewhere.

    Args:
        environ: The environment (``os.environ``): ``CI_NAME`` names the instance.
        instance_file: The instance's description of itself (:data:`INSTANCE_FILE`): its ``instance`` line, for a
            process started without the instance's environment (a terminal's ``make``, a cron job).
    """
    named = ((os.environ if environ is None else environ).get(COMPUTE_INSTANCE_VARIABLE) or "").strip()
    if named:
        return named
    try:
        lines = (instance_file or INSTANCE_FILE).read_text().splitlines()
    except OSError:
        return None
    described = dict(line.strip().split("=", 1) for line in lines if "=" in line)
    return described.get("instance", "").strip() or None


def instance_workspace(environ: Mapping[str, str] | None = None) -> tuple[str, str, str] | None:
    """``(subscription id, resource group, workspace)`` of the workspace a compute instance belongs to, or ``None``.

    Read from what Azure ML sets in the instance's environment: the workspace's MLflow URI
    (:data:`TRACKING_VARIABLE`), the only one naming the subscription, checked against ``CI_RESOURCE_GROUP`` and
    ``CI_WORKSPACE`` when those are set. ``None`` off a compute instance, when the URI is missing or is not an
    Azure ML one, or when it names another workspace than the instance's (a user pointed MLflow elsewhere).
    """
    environ = os.environ if environ is None else environ
    uri = (environ.get(TRACKING_VARIABLE) or "").strip()
    found = _WORKSPACE_ID.search(uri) if uri.startswith("azureml:") else None
    if found is None or compute_instance(environ) is None:
        return None
    named = found.group("group", "workspace")
    stated = tuple((environ.get(name) or "").strip() for name in INSTANCE_WORKSPACE_VARIABLES)
    if all(stated) and tuple(value.lower() for value in stated) != tuple(value.lower() for value in named):
        return None
    return found.group("subscription"), *named


def filesystem_type(path: Path, mounts: Path | None = None) -> str | None:
    """The type of the file system holding ``path`` (the longest mount point above it), if the mount table says."""
    try:
        table = (mounts or MOUNTS).read_text()
    except OSError:
        return None  # no /proc (macOS): nothing known
    path = Path(path).resolve()
    found, found_type = None, None
    for line in table.splitlines():
        fields = line.split()
        if len(fields) < 3:
            continue
        point = Path(fields[1].replace("\\040", " "))
        if (path == point or point in path.parents) and (found is None or len(point.parts) > len(found.parts)):
            found, found_type = point, fields[2]
    return found_type


def on_network_share(path: Path, mounts: Path | None = None) -> bool:
    """Whether ``path`` is on a network file system (SMB, NFS, blobfuse)."""
    return filesystem_type(path, mounts) in NETWORK_FILESYSTEMS


def local_state_dir(root: Path, mounts: Path | None = None) -> Path:
    """A folder for a project's local state on this machine's own disk: under the home folder, else the temp folder.

    Args:
        root: The project root; the folder is named after it, so two clones keep apart.
        mounts: The mount table to read (``/proc/mounts``).
    """
    root = Path(root).resolve()
    name = f"{root.name}-{hashlib.sha256(str(root).encode()).hexdigest()[:8]}"
    for base in (Path.home(), Path(tempfile.gettempdir())):
        if not on_network_share(base, mounts):
            return base / ".amlops" / name
    return Path(tempfile.gettempdir()) / "amlops" / name
