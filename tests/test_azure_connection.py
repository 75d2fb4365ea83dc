"""Workspace and credentials: found in the documented places, or a fast failure that says what to provide."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from amlops.azure import connection
from amlops.core.azure_settings import AzureSettings
from tests.support.checkout import REPO

pytestmark = [
    pytest.mark.filterwarnings("ignore::marshmallow.warnings.ChangedInMarshmallow4Warning"),
    pytest.mark.filterwarnings("ignore::marshmallow.warnings.RemovedInMarshmallow4Warning"),
]

WORKSPACE = {
    "subscription_id": "00000000-0000-0000-0000-000000000001",
    "resource_group": "rg-ml",
    "workspace_name": "ws",
}

#: Loaded into the child interpreter: any connection or name lookup beyond loopback is recorded and refused.
NETWORK_GUARD = """
import os, socket

_LOG = os.environ["NETWORK_GUARD_LOG"]
_LOOPBACK = {"127.0.0.1", "::1", "localhost"}


def _refuse(what):
    with open(_LOG, "a") as log:
        log.write(what + "\\n")
    raise OSError(f"network disabled by the test: {what}")


def _checked(method):
    def wrapper(self, address, *args):
        host = address[0] if isinstance(address, tuple) else address
        if self.family in (socket.AF_INET, socket.AF_INET6) and host not in _LOOPBACK:
            _refuse(f"connect {address}")
        return method(self, address, *args)
    return wrapper


socket.socket.connect = _checked(socket.socket.connect)
socket.socket.connect_ex = _checked(socket.socket.connect_ex)
_getaddrinfo = socket.getaddrinfo


def getaddrinfo(host, *args, **kwargs):
    if host is not None and host not in _LOOPBACK:
        _refuse(f"resolve {host}")
    return _getaddrinfo(host, *args, **kwargs)


socket.getaddrinfo = getaddrinfo
"""


@pytest.fixture
def clean_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith(("AZURE", "AZUREML_", "MSI_", "IDENTITY_", "AMLOPS_AZURE_")):
            monkeypatch.delenv(name)


def _write_config(path: Path, content: dict) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(content))
    return path


def test_studio_config_in_the_project_root(tmp_path: Path, clean_environ):
    _write_config(tmp_path / "config.json", WORKSPACE)
    found = connection.find_workspace(root=tmp_path)
    assert (found.subscription_id, found.resource_group, found.workspace_name) == tuple(WORKSPACE.values())
    assert found.source == str(tmp_path / "config.json")


def test_dot_azureml_config_is_found_too(tmp_path: Path, clean_environ):
    _write_config(tmp_path / ".azureml" / "config.json", WORKSPACE)
    assert connection.find_workspace(root=tmp_path).workspace_name == "ws"


def test_a_config_above_the_project_is_found_as_from_config_finds_it(tmp_path: Path, clean_environ):
    """A clone in a compute instance's user folder finds the config.json kept above it."""
    user = tmp_path / "cloudfiles" / "code" / "Users" / "ana"
    root = user / "projects" / "my-model"
    root.mkdir(parents=True)
    _write_config(user / "config.json", {**WORKSPACE, "workspace_name": "users-folder"})
    assert connection.find_workspace(root=root).source == str(user / "config.json")
    _write_config(tmp_path / ".azureml" / "config.json", {**WORKSPACE, "workspace_name": "dot-azureml"})
    assert connection.find_workspace(root=root).workspace_name == "dot-azureml"  # .azureml/ first, as from_config
    _write_config(root / "config.json", {**WORKSPACE, "workspace_name": "root"})
    assert connection.find_workspace(root=root).workspace_name == "dot-azureml"
    assert connection.find_config_file(root / "nowhere") == tmp_path / ".azureml" / "config.json"


INSTANCE_URI = (
    "azureml://westeurope.api.azureml.ms/mlflow/v1.0/subscriptions/sub-1/resourceGroups/rg-ml"
    "/providers/Microsoft.MachineLearningServices/workspaces/ws-dev"
)


@pytest.mark.parametrize(
    ("environ", "found"),
    [
        ({"CI_NAME": "ana-ci", "MLFLOW_TRACKING_URI": INSTANCE_URI}, ("sub-1", "rg-ml", "ws-dev")),
        (
            {
                "CI_NAME": "ana-ci",
                "MLFLOW_TRACKING_URI": INSTANCE_URI,
                "CI_RESOURCE_GROUP": "RG-ML",
                "CI_WORKSPACE": "ws-dev",
            },
            ("sub-1", "rg-ml", "ws-dev"),
        ),
        # pointed at another workspace than the instance's own: not followed
        (
            {
                "CI_NAME": "ana-ci",
                "MLFLOW_TRACKING_URI": INSTANCE_URI,
                "CI_RESOURCE_GROUP": "rg-ml",
                "CI_WORKSPACE": "prod",
            },
            None,
        ),
        ({"MLFLOW_TRACKING_URI": INSTANCE_URI}, None),  # not a compute instance
        ({"CI_NAME": "ana-ci", "MLFLOW_TRACKING_URI": "sqlite:///x/subscriptions/a/resourceGroups/b"}, None),
        ({"CI_NAME": "ana-ci", "CI_RESOURCE_GROUP": "rg-ml", "CI_WORKSPACE": "ws-dev"}, None),  # no subscription
    ],
)
def test_the_workspace_a_compute_instance_names_in_its_environment(environ: dict, found):
    from amlops.core import machine

    assert machine.instance_workspace(environ) == found


def test_on_a_compute_instance_its_own_workspace_is_found_after_any_config_json(tmp_path: Path, clean_environ):
    environ = {
        "CI_NAME": "ana-ci",
        "MLFLOW_TRACKING_URI": INSTANCE_URI,
        "CI_RESOURCE_GROUP": "rg-ml",
        "CI_WORKSPACE": "ws-dev",
    }
    found = connection.find_workspace(root=tmp_path, environ=environ)
    assert (found.subscription_id, found.resource_group, found.workspace_name) == ("sub-1", "rg-ml", "ws-dev")
    assert found.source == "compute instance ana-ci"
    _write_config(tmp_path / "config.json", WORKSPACE)
    assert connection.find_workspace(root=tmp_path, environ=environ).workspace_name == "ws"  # the user's choice wins
    (tmp_path / "config.json").unlink()
    with pytest.raises(connection.AzureSetupError, match="no Azure ML workspace is configured"):
        connection.find_workspace(root=tmp_path, environ={"MLFLOW_TRACKING_URI": INSTANCE_URI})


def test_explicit_config_wins_over_environment_and_root(tmp_path: Path, clean_environ, monkeypatch):
    _write_config(tmp_path / "config.json", WORKSPACE)
    explicit = _write_config(tmp_path / "other.json", {**WORKSPACE, "workspace_name": "explicit"})
    monkeypatch.setenv("AZUREML_SUBSCRIPTION_ID", "s")
    monkeypatch.setenv("AZUREML_RESOURCE_GROUP", "g")
    monkeypatch.setenv("AZUREML_WORKSPACE_NAME", "from-env")
    assert connection.find_workspace(explicit, root=tmp_path).workspace_name == "explicit"
    assert connection.find_workspace(root=tmp_path).workspace_name == "from-env"
    monkeypatch.setenv("AMLOPS_AZURE_WORKSPACE_CONFIG", str(explicit))
    assert connection.find_workspace(root=tmp_path).workspace_name == "explicit"


def test_incomplete_environment_names_the_missing_variables(tmp_path: Path, clean_environ, monkeypatch):
    monkeypatch.setenv("AZUREML_WORKSPACE_NAME", "ws")
    with pytest.raises(connection.AzureSetupError, match="AZUREML_SUBSCRIPTION_ID, AZUREML_RESOURCE_GROUP not set"):
        connection.find_workspace(root=tmp_path)


def test_no_workspace_says_every_way_to_provide_one(tmp_path: Path, clean_environ):
    with pytest.raises(connection.AzureSetupError) as raised:
        connection.find_workspace(root=tmp_path)
    message = str(raised.value)
    for needle in (
        "config.json",
        str(tmp_path),
        "--workspace-config",
        "AZUREML_SUBSCRIPTION_ID",
        "AZUREML_WORKSPACE_NAME",
    ):
        assert needle in message


@pytest.mark.parametrize(
    ("content", "words"),
    [
        ({"subscription_id": "s", "resource_group": "g"}, "workspace_name missing"),
        ({**WORKSPACE, "resource_group": " "}, "resource_group missing"),
        (["not", "an", "object"], "expected a JSON object"),
    ],
)
def test_bad_config_json_names_the_file_and_field(tmp_path: Path, clean_environ, content, words: str):
    path = _write_config(tmp_path / "config.json", content)
    with pytest.raises(connection.AzureSetupError, match=words) as raised:
        connection.find_workspace(root=tmp_path)
    assert str(path) in str(raised.value)


def test_unreadable_config_json(tmp_path: Path, clean_environ):
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(connection.AzureSetupError, match="not a readable JSON"):
        connection.find_workspace(root=tmp_path)


def test_missing_explicit_config(tmp_path: Path, clean_environ):
    with pytest.raises(connection.AzureSetupError, match="not found"):
        connection.find_workspace(tmp_path / "nope.json", root=tmp_path)


@pytest.mark.parametrize(
    ("environ", "opt_in", "allowed"),
    [
        ({}, False, False),
        ({"AZURE_CLIENT_ID": "id"}, False, True),
        ({"IDENTITY_ENDPOINT": "http://localhost:42"}, False, True),
        ({"MSI_ENDPOINT": "http://localhost:42"}, False, True),
        ({}, True, True),
    ],
)
def test_managed_identity_only_where_the_host_has_one(clean_environ, environ: dict, opt_in: bool, allowed: bool):
    settings = AzureSettings(use_managed_identity=opt_in)
    assert connection.managed_identity_allowed(environ, settings) is allowed


def test_the_credential_never_prompts_and_skips_absent_managed_identity(clean_environ):
    credential = connection.make_credential(AzureSettings(), environ={})
    names = [type(item).__name__ for item in credential.credentials]
    assert "InteractiveBrowserCredential" not in names
    assert "ManagedIdentityCredential" not in names
    assert "AzureCliCredential" in names


def test_a_credential_that_hangs_fails_within_the_timeout():
    release = threading.Event()

    class Hanging:
        def get_token(self, *scopes, **kwargs):
            release.wait(30)

    started = time.monotonic()
    try:
        with pytest.raises(connection.AzureSetupError, match=r"within 0\.3 s"):
            connection.check_credential(Hanging(), timeout=0.3)
    finally:
        release.set()
    assert time.monotonic() - started < 2


def test_a_failing_credential_is_reported_with_how_to_provide_one():
    from azure.core.exceptions import ClientAuthenticationError

    class Failing:
        def get_token(self, *scopes, **kwargs):
            raise ClientAuthenticationError("Attempted credentials:\n\tAzureCliCredential: Azure CLI not found on path")

    with pytest.raises(connection.AzureSetupError) as raised:
        connection.check_credential(Failing(), timeout=5)
    assert "AzureCliCredential: Azure CLI not found on path" in str(raised.value)
    assert "az login" in str(raised.value)
    assert "AZURE_CLIENT_SECRET" in str(raised.value)


def _run_isolated(
    tmp_path: Path, args: list[str], extra_env: dict[str, str]
) -> tuple[subprocess.CompletedProcess, float, str]:
    """Run ``python -m amlops azure ...`` with no Azure credentials, an empty HOME and no network but loopback."""
    guard = tmp_path / "guard"
    guard.mkdir()
    (guard / "sitecustomize.py").write_text(NETWORK_GUARD)
    home, root = tmp_path / "home", tmp_path / "root"
    home.mkdir()
    root.mkdir()
    (root / "contract.yml").write_bytes((REPO / "contract.yml").read_bytes())  # a project: it names its model
    guard_log = tmp_path / "network.log"
    env = {
        # Only the venv on PATH: no Azure CLI, PowerShell or azd to fall back to.
        "PATH": str(Path(sys.executable).parent),
        "HOME": str(home),
        # The guard, then this checkout: the command runs outside it, where the venv's editable install may
        # point at another checkout.
        "PYTHONPATH": os.pathsep.join([str(guard), str(REPO)]),
        "NETWORK_GUARD_LOG": str(guard_log),
        "AMLOPS_ROOT": str(root),
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "DO_NOT_TRACK": "true",
        **extra_env,
    }
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, *args] if args[0] == "-c" else [sys.executable, "-m", "amlops", "azure", *args],
        env=env,
        cwd=root,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    attempts = guard_log.read_text() if guard_log.exists() else ""
    return result, time.monotonic() - started, attempts


def test_no_credentials_fails_fast_with_what_to_do(tmp_path: Path):
    result, seconds, attempts = _run_isolated(
        tmp_path,
        ["check"],
        {
            "AZUREML_SUBSCRIPTION_ID": WORKSPACE["subscription_id"],
            "AZUREML_RESOURCE_GROUP": WORKSPACE["resource_group"],
            "AZUREML_WORKSPACE_NAME": WORKSPACE["workspace_name"],
        },
    )
    assert result.returncode == 2, result.stderr
    assert seconds < 20
    assert "no Azure credentials" in result.stderr
    assert "az login" in result.stderr
    assert "AZURE_CLIENT_SECRET" in result.stderr
    assert "Traceback" not in result.stderr
    assert attempts == ""  # nothing tried to leave the machine


def test_an_azureml_tracking_uri_without_credentials_fails_fast_instead_of_a_login_prompt(tmp_path: Path):
    uri = (
        "azureml://eastus.api.azureml.ms/mlflow/v1.0/subscriptions/00000000-0000-0000-0000-000000000001"
        "/resourceGroups/rg-ml/providers/Microsoft.MachineLearningServices/workspaces/ws"
    )
    code = "from amlops.cli.main import main\nraise SystemExit(main(['models', 'list']))"
    result, seconds, attempts = _run_isolated(tmp_path, ["-c", code], {"AMLOPS_TRACKING_URI": uri})
    assert result.returncode == 2, result.stderr
    assert seconds < 20
    assert "no Azure credentials" in result.stderr
    assert "Traceback" not in result.stderr
    assert attempts == ""


def test_no_workspace_fails_fast_with_where_to_put_it(tmp_path: Path):
    result, seconds, attempts = _run_isolated(tmp_path, ["endpoint", "--stage", "prod"], {})
    assert result.returncode == 2, result.stderr
    assert seconds < 20
    assert "no Azure ML workspace is configured" in result.stderr
    assert "config.json" in result.stderr
    assert "AZUREML_WORKSPACE_NAME" in result.stderr
    assert attempts == ""


def test_the_network_guard_itself_catches_a_connection(tmp_path: Path):
    """The two tests above are only worth something if the guard sees connection attempts."""
    code = (
        "import socket\ntry:\n    socket.create_connection(('example.com', 443), timeout=1)\nexcept OSError:\n    pass"
    )
    result, _, attempts = _run_isolated(tmp_path, ["-c", code], {})
    assert result.returncode == 0, result.stderr
    assert "resolve example.com" in attempts
