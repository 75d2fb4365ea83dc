"""Security hygiene: no secrets in the repository, secrets git-ignored, endpoints on loopback unless told."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from amlops.serving.local import exposure_warning
from tests.support.checkout import REPO

#: Files that must never be committed, whatever a developer drops into the checkout.
SECRET_FILES = ("config.json", ".env", "prod.env", ".azureml/config.json", "notebooks/config.json")


def _repository_files() -> list[str]:
    """Tracked files plus untracked ones git does not ignore (what the next commit could contain)."""
    done = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:  # not a git checkout (an unpacked archive): scan the files themselves
        skip = {".venv", ".mlops", "build", ".git", "__pycache__", ".pytest_cache", ".ruff_cache", "mlruns"}
        return [
            str(p.relative_to(REPO))
            for p in REPO.rglob("*")
            if p.is_file() and not skip & set(p.relative_to(REPO).parts) and ".egg-info" not in str(p)
        ]
    return [name for name in done.stdout.splitlines() if (REPO / name).is_file()]


def test_secret_scan_finds_nothing():
    """detect-secrets over every file that could be committed; a deliberate test fixture says so inline."""
    files = _repository_files()
    assert len(files) > 50
    done = subprocess.run(
        [sys.executable, "-m", "detect_secrets", "scan", *files],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    findings = {
        name: [(item["type"], item["line_number"]) for item in items]
        for name, items in json.loads(done.stdout)["results"].items()
    }
    assert findings == {}, f"possible secrets (add `# pragma: allowlist secret` only to fake test values): {findings}"


def test_the_scan_would_catch_a_key(tmp_path: Path):
    leaked = tmp_path / "settings.py"
    leaked.write_text(
        'AZURE_STORAGE = "DefaultEndpointsProtocol=https;AccountName=x;AccountKey=' + "A1b2" * 22 + '=="\n'
    )
    done = subprocess.run(  # detect-secrets scans only files below its working directory
        [sys.executable, "-m", "detect_secrets", "scan", leaked.name],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    found = {item["type"] for items in json.loads(done.stdout)["results"].values() for item in items}
    assert "Azure Storage Account access key" in found


@pytest.mark.parametrize("name", SECRET_FILES)
def test_workspace_config_and_env_files_are_ignored(name: str):
    if subprocess.run(["git", "rev-parse"], cwd=REPO, capture_output=True, check=False).returncode != 0:
        pytest.skip("not a git checkout")
    done = subprocess.run(["git", "check-ignore", "--no-index", "-q", name], cwd=REPO, check=False)
    assert done.returncode == 0, f"{name} is not git-ignored"


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "::1", "localhost"])
def test_loopback_hosts_bind_silently(host: str):
    assert exposure_warning(host) is None


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "10.1.2.3", "my-server.example"])
def test_other_hosts_are_warned_about(host: str):
    assert "127.0.0.1" in exposure_warning(host) or "reachable from other machines" in exposure_warning(host)


def test_committed_local_config_binds_loopback():
    from amlops.core.deployment_config import load_deployment_config

    assert exposure_warning(load_deployment_config(REPO / "deploymentConfig.local.yml").host) is None


def test_azure_endpoints_use_key_auth_by_default():
    from amlops.core.deployment_config import load_deployment_config

    for name in ("deploymentConfig.yml", "deploymentConfig.production.yml"):
        assert load_deployment_config(REPO / name).authEnabled is True, name
