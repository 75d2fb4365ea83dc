"""The examples' own tests: their data, and the classifier example run end to end in a copy of the repository.

The package's tests use a test project of their own (``tests/fixtures/project``); these are the tests that read
the models this repository ships: the regression in the root (``make run`` itself is ``tests/test_lifecycle.py``)
and ``examples/breast-cancer``. The classifier is set up exactly as docs/your-model.md says: only
``contract.yml``, ``train.py`` and the data change; the package does not. The run registers, serves and
smoke-tests the classifier; a deployed endpoint then answers string labels with probabilities, and a 400 for
a request outside the contract.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import requests

from amlops.core import contract
from amlops.core.settings import DriftSettings
from amlops.ml import data, drift
from tests.support.checkout import EXAMPLES, REPO, clean_env, clone_checkout, on_a_free_port
from tests.support.project import load_script

EXAMPLE = REPO / "examples" / "breast-cancer"
#: The projects this repository ships: the root's, and each example.
PROJECTS = [REPO, *EXAMPLES]


def _name(root: Path) -> str:
    return "root" if root == REPO else root.name


# --- the shipped data ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("root", PROJECTS, ids=_name)
def test_each_snapshot_is_valid_and_matches_its_recorded_sha256(root: Path):
    project = contract.in_root(root)
    snapshot = root / project.data
    assert data.sha256_file(snapshot) == snapshot.with_name(snapshot.name + ".sha256").read_text().split()[0]
    data.validate(data.load_csv(snapshot), project, min_rows=100, source=str(snapshot))


@pytest.mark.parametrize(
    "script", [root / "data" / "make_dataset.py" for root in PROJECTS if (root / "data" / "make_dataset.py").exists()]
)
def test_each_data_script_rewrites_its_files_byte_for_byte(script: Path, tmp_path: Path):
    assert load_script(script).main(["--out", str(tmp_path)]) == 0
    written = sorted(path.relative_to(tmp_path) for path in tmp_path.rglob("*") if path.is_file())
    assert written, f"{script} wrote nothing"
    for relative in written:
        assert (tmp_path / relative).read_bytes() == (script.parent / relative).read_bytes(), relative


@pytest.mark.parametrize(
    "labelled", [path for root in PROJECTS for path in sorted((root / "data" / "fixtures").glob("*.csv"))]
)
def test_labelled_data_for_models_check_passes_the_schema_and_the_drift_check(labelled: Path):
    """A file for ``models check --retrain`` must be accepted by ``prep``, or the retraining it starts would stop."""
    root = labelled.parents[2]
    project = contract.in_root(root)
    snapshot = data.validate(data.load_csv(root / project.data), project, min_rows=100)
    checked = data.validate(data.load_csv(labelled), project, min_rows=30, source=str(labelled))
    drift.check(snapshot, checked, DriftSettings(), str(labelled))


# --- the classifier, end to end ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def adapted(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the repository with the example set up in it, as the example's README says."""
    return clone_checkout(tmp_path_factory.mktemp("example") / "repo", EXAMPLE)


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


@pytest.mark.integration
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

    deployed = _run(adapted, python, "-m", "amlops", "deploy", "--config", str(on_a_free_port(adapted, "free.yml")))
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
