"""The lock, the conda environments and the installed packages agree."""

from __future__ import annotations

import re
import subprocess
import sys
from importlib.metadata import version as installed_version

import pytest
import yaml
from packaging.markers import Marker

from tests.support.checkout import REPO

PIN = re.compile(r"^([A-Za-z0-9_.\-]+)==([^\s;]+)$")
LOCKED = re.compile(r"^([A-Za-z0-9_.\-]+)==([^\s;]+)\s*(?:;\s*(.+))?$")
#: What a saved model needs to be loaded and to predict: one version of each for every supported Python.
MODEL_LIBRARIES = ("numpy", "scipy", "scikit-learn", "skops", "pandas")
PYTHONS = ("3.10", "3.11", "3.12", "3.13")


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _lock(python: str = "{}.{}".format(*sys.version_info[:2]), platform: str = "linux") -> dict[str, str]:
    """The lock's pins that apply to one Python version on one platform (its markers evaluated)."""
    pins = {}
    for line in (REPO / "requirements.lock").read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        match = LOCKED.match(line)
        assert match, f"requirements.lock: not an exact pin: {line!r}"
        environment = {"python_version": python, "python_full_version": f"{python}.0", "sys_platform": platform}
        if match[3] is None or Marker(match[3]).evaluate(environment):
            name = _normalise(match[1])
            assert name not in pins, f"requirements.lock: two pins of {name} apply to Python {python}"
            pins[name] = match[2]
    return pins


def _conda(name: str) -> tuple[str, dict[str, str]]:
    """A conda file's Python version and its pip pins."""
    spec = yaml.safe_load((REPO / name).read_text())
    python = next(d.removeprefix("python=") for d in spec["dependencies"] if str(d).startswith("python="))
    pip_section = next(d["pip"] for d in spec["dependencies"] if isinstance(d, dict) and "pip" in d)
    pins = {}
    for line in pip_section:
        match = PIN.match(line)
        assert match, f"{name}: not an exact pin: {line!r}"
        pins[_normalise(match[1])] = match[2]
    return python, pins


@pytest.mark.parametrize("python", PYTHONS)
def test_the_lock_resolves_every_supported_python(python: str):
    needed = {"mlflow", "azure-ai-ml", "azureml-inference-server-http", *MODEL_LIBRARIES}
    assert needed <= _lock(python).keys()
    assert needed <= _lock(python, platform="darwin").keys()


def test_a_model_is_served_with_the_library_versions_it_was_trained_with_on_any_supported_python():
    for library in MODEL_LIBRARIES:
        versions = {python: _lock(python)[library] for python in PYTHONS}
        assert len(set(versions.values())) == 1, f"{library}: {versions}"


@pytest.mark.parametrize("conda_file", ["myenv.yml", "environments/score.yml"])
def test_conda_files_pin_the_locked_versions(conda_file: str):
    python, pins = _conda(conda_file)
    assert python in PYTHONS
    lock = _lock(python)
    for name, pinned in pins.items():
        assert name in lock, f"{conda_file}: {name} is not in requirements.lock"
        assert pinned == lock[name], f"{conda_file}: {name}=={pinned} but requirements.lock has {lock[name]}"


def test_scoring_environment_can_load_the_model_without_mlflow():
    _, pins = _conda("environments/score.yml")
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
