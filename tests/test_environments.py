"""The lock, the conda environments and the installed packages agree."""

from __future__ import annotations

import re
import subprocess
import sys
from importlib.metadata import version as installed_version

import pytest
import yaml

from tests.support.checkout import REPO

PIN = re.compile(r"^([A-Za-z0-9_.\-]+)==([^\s;]+)$")


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _lock() -> dict[str, str]:
    pins = {}
    for line in (REPO / "requirements.lock").read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        match = PIN.match(line)
        assert match, f"requirements.lock: not an exact pin: {line!r}"
        pins[_normalise(match[1])] = match[2]
    return pins


def _conda_pins(name: str) -> dict[str, str]:
    spec = yaml.safe_load((REPO / name).read_text())
    pip_section = next(d["pip"] for d in spec["dependencies"] if isinstance(d, dict) and "pip" in d)
    assert "python=3.11" in spec["dependencies"]
    pins = {}
    for line in pip_section:
        match = PIN.match(line)
        assert match, f"{name}: not an exact pin: {line!r}"
        pins[_normalise(match[1])] = match[2]
    return pins


@pytest.mark.parametrize("conda_file", ["myenv.yml", "environments/score.yml"])
def test_conda_files_pin_the_locked_versions(conda_file: str):
    lock = _lock()
    for name, pinned in _conda_pins(conda_file).items():
        assert name in lock, f"{conda_file}: {name} is not in requirements.lock"
        assert pinned == lock[name], f"{conda_file}: {name}=={pinned} but requirements.lock has {lock[name]}"


def test_scoring_environment_can_load_the_model_without_mlflow():
    pins = _conda_pins("environments/score.yml")
    assert "mlflow" not in pins
    assert {"azureml-inference-server-http", "scikit-learn", "skops", "numpy", "pyyaml"} <= pins.keys()


def test_installed_packages_are_the_locked_versions():
    mismatched = {}
    for name, pinned in _lock().items():
        try:
            found = installed_version(name)
        except Exception:  # noqa: BLE001 - report every missing package, not just the first
            found = "missing"
        if _normalise(found) != _normalise(pinned):
            mismatched[name] = (pinned, found)
    assert not mismatched, mismatched


def test_pip_check_is_clean():
    done = subprocess.run(
        [sys.executable, "-m", "pip", "check"], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
