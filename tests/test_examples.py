"""The classifier example, set up exactly as docs/your-model.md says, run end to end in a copy of the repository.

Only ``contract.yml``, ``train.py`` and the data change; the package does not. The run registers, serves and
smoke-tests the classifier; a deployed endpoint then answers string labels with probabilities, and a 400 for
a request outside the contract.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
import requests

from tests.support.checkout import NOT_IN_A_CLONE, REPO, clean_env

pytestmark = pytest.mark.integration

EXAMPLE = REPO / "examples" / "breast-cancer"


@pytest.fixture(scope="module")
def adapted(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the repository with the example's files copied over the root's, as the example's README says."""
    dest = tmp_path_factory.mktemp("example") / "repo"
    shutil.copytree(REPO, dest, ignore=shutil.ignore_patterns(*NOT_IN_A_CLONE, "examples"))
    (dest / ".venv").symlink_to(REPO / ".venv")
    for name in ("data/diabetes.csv", "data/diabetes.csv.sha256", "data/make_dataset.py"):
        (dest / name).unlink()
    shutil.copytree(EXAMPLE, dest, dirs_exist_ok=True, ignore=shutil.ignore_patterns("README.md", "__pycache__"))
    return dest


def _run(root: Path, *command: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        list(command), cwd=root, env=clean_env(), capture_output=True, text=True, timeout=timeout, check=False
    )


def test_the_example_changes_only_the_three_files_and_the_data():
    changed = sorted(path.relative_to(EXAMPLE).as_posix() for path in EXAMPLE.rglob("*") if path.is_file())
    assert [name for name in changed if "__pycache__" not in name] == [
        "README.md",
        "contract.yml",
        "data/breast_cancer.csv",
        "data/breast_cancer.csv.sha256",
        "data/make_dataset.py",
        "train.py",
    ]


@pytest.mark.timeout(900)  # a whole `make run`, then a deployment
def test_the_classifier_runs_end_to_end_and_serves_labels_and_probabilities(adapted: Path):
    python = str(adapted / ".venv" / "bin" / "python")
    snapshot = _run(adapted, python, "-m", "amlops", "snapshot")
    assert snapshot.returncode == 0, snapshot.stderr[-2000:]

    run = _run(adapted, "make", "run", "ENV_READY=1")
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert "model        breast-cancer-classifier  production version 1" in run.stdout
    assert "candidate    accuracy 0.9" in run.stdout
    assert "smoke test   passed" in run.stdout

    deployed = _run(adapted, python, "-m", "amlops", "deploy")
    assert deployed.returncode == 0, deployed.stderr[-2000:]
    try:
        state = json.loads((adapted / "build" / "endpoints" / "local.json").read_text())
        url = state["scoring_uri"]
        row = {"mean_radius": 20.6, "mean_texture": 29.3, "mean_perimeter": 140.1, "mean_area": 1265.0,
               "mean_smoothness": 0.118, "mean_compactness": 0.277, "mean_concavity": 0.351,
               "mean_concave_points": 0.152, "mean_symmetry": 0.240, "mean_fractal_dimension": 0.070}  # fmt: skip
        answer = requests.post(url, json={"data": [row]}, timeout=30)
        assert answer.status_code == 200, answer.text
        payload = answer.json()
        assert payload["predictions"] == ["malignant"]
        assert set(payload["probabilities"][0]) == {"malignant", "benign"}
        assert payload["probabilities"][0]["malignant"] > 0.5
        refused = requests.post(url, json={"data": [row | {"mean_area": 1e300}]}, timeout=30)
        assert refused.status_code == 400
        assert "column 'mean_area'" in refused.json()["message"]
        spec = requests.get(url.removesuffix("/score") + "/swagger.json?version=3", timeout=30).json()
        labels = spec["components"]["schemas"]["ServiceOutput"]["properties"]["predictions"]["items"]
        assert labels == {"type": "string", "enum": ["benign", "malignant"]}
    finally:
        stopped = _run(adapted, python, "-m", "amlops", "undeploy")
        assert stopped.returncode == 0, stopped.stderr[-2000:]
