"""``contract.yml``: what it accepts, the error naming the file and field for what it refuses, what derives from it."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from amlops.core import contract
from amlops.core.settings import PACKAGE_DIR, ProjectSettings
from tests.support.checkout import REPO
from tests.support.project import CONTRACT, edit_contract


def test_the_test_projects_contract_reads_as_declared():
    assert CONTRACT.name == "tiny-ridge"
    assert CONTRACT.task == "regression"
    assert CONTRACT.feature_names[:3] == ("length", "grade", "width")
    assert list(CONTRACT.columns)[-1] == CONTRACT.target.name
    assert CONTRACT.metric.direction == "minimize"
    assert CONTRACT.defaults() == {"alpha": 1.0}
    assert CONTRACT.metric.better(1.0, than=2.0)
    assert not CONTRACT.metric.better(2.0, than=2.0)


BAD = {
    "unknown field": ({"colour": "red"}, "field 'colour': Extra inputs are not permitted"),
    "missing field": ({"task": None}, "field 'task': Field required"),
    "name with capitals": ({"name": "My_Model"}, "field 'name': String should match pattern"),
    "unknown task": ({"task": "ranking"}, "field 'task': Input should be 'regression' or 'classification'"),
    "absolute data path": ({"data": "/tmp/x.csv"}, "field 'data': give the path relative to the project root"),
    "range upside down": (
        {"features": [{"name": "x", "range": [5, 1]}]},
        "field 'features.0.range': low 5.0 is above high 1.0",
    ),
    "text column with a range": (
        {"target": {"name": "y", "type": "str", "range": [0, 1]}},
        "field 'target.range': a str column has no range",
    ),
    "text feature": (
        {"features": [{"name": "colour", "type": "str", "categories": ["red"]}]},
        "field 'features': colour: the model and the endpoint take numbers",
    ),
    "numeric column with text categories": (
        {"features": [{"name": "x", "categories": ["a", "b"]}]},
        "field 'features.0.categories': a float column's categories must be numbers",
    ),
    "repeated column": (
        {"features": [{"name": "x"}, {"name": "x"}]},
        "field 'features': each column is named once (repeated: x)",
    ),
    "classification target with a range": (
        {"task": "classification"},
        "field 'target': a classification target has categories, not a range",
    ),
    "unknown metric direction": (
        {"metric": {"name": "rmse", "direction": "down"}},
        "field 'metric.direction': Input should be 'minimize' or 'maximize'",
    ),
    "limit without bounds": ({"gate": {"limits": {"rmse": {}}}}, "field 'gate.limits.rmse': a limit needs min, max"),
    "search value of the wrong type": (
        {"params": {"alpha": {"default": 1.0, "search": [0.1, "strong"]}}},
        "field 'params.alpha.search': expected a value of type float, got 'strong'",
    ),
    "empty search": (
        {"params": {"alpha": {"default": 1.0, "search": []}}},
        "field 'params.alpha.search': Tuple should have at least 1 item",
    ),
    "null default": (
        {"params": {"depth": {"type": "int", "default": None}}},
        "field 'params.depth.default': null is not a value train.py can be given on every target",
    ),
    "null among the search values": (
        {"params": {"depth": {"type": "int", "default": 3, "search": [3, None]}}},
        "field 'params.depth.search': null is not a value",
    ),
    "parameter that is not an identifier": (
        {"params": {"n-estimators": {"default": 100}}},
        "field 'params': 'n-estimators' is not a Python identifier",
    ),
}


@pytest.mark.parametrize("case", list(BAD))
def test_a_wrong_field_is_refused_naming_the_file_and_field(tmp_path: Path, case: str):
    changes, expected = BAD[case]
    path = edit_contract(tmp_path, **changes)
    with pytest.raises(contract.ContractError) as raised:
        contract.load(path)
    assert str(raised.value).startswith(f"{path}: field '"), raised.value
    assert expected in str(raised.value)
    if case.startswith("null"):  # one message, not one per type a value could have
        assert len(str(raised.value).splitlines()) == 1, raised.value


def test_candidates_are_every_combination_of_the_search_values_each_of_its_type(tmp_path: Path):
    params = {
        "alpha": {"default": 1, "search": [0.1, 1]},
        "solver": {"type": "str", "default": "svd"},
        "depth": {"type": "int", "default": 2, "search": [2, 4]},
    }
    declared = contract.load(edit_contract(tmp_path, params=params))
    assert declared.defaults() == {"alpha": 1.0, "solver": "svd", "depth": 2}
    assert isinstance(declared.defaults()["alpha"], float)
    assert declared.candidates() == [
        {"alpha": 0.1, "solver": "svd", "depth": 2},
        {"alpha": 0.1, "solver": "svd", "depth": 4},
        {"alpha": 1.0, "solver": "svd", "depth": 2},
        {"alpha": 1.0, "solver": "svd", "depth": 4},
    ]
    assert CONTRACT.candidates() == [CONTRACT.defaults()]  # no search: the default alone


def test_a_missing_or_malformed_file_is_named(tmp_path: Path):
    with pytest.raises(contract.ContractError, match=r"contract\.yml: no contract file"):
        contract.load(tmp_path / "contract.yml")
    (tmp_path / "contract.yml").write_text("name: [unclosed\n")
    with pytest.raises(contract.ContractError, match=r"contract\.yml: not valid YAML"):
        contract.load(tmp_path / "contract.yml")
    (tmp_path / "contract.yml").write_text("- a list\n")
    with pytest.raises(contract.ContractError, match="expected a mapping of fields, found list"):
        contract.load(tmp_path / "contract.yml")


def test_names_derive_from_the_contract_and_an_environment_variable_overrides_them(
    project: Path, monkeypatch: pytest.MonkeyPatch
):
    edit_contract(project, name="wine-classifier")
    settings = ProjectSettings()
    assert (settings.model_name, settings.experiment_name) == ("wine-classifier", "wine-classifier")
    assert settings.pipeline_name == "wine-classifier-training"
    monkeypatch.setenv("AMLOPS_MODEL_NAME", "renamed")
    assert (ProjectSettings().model_name, ProjectSettings().pipeline_name) == ("renamed", "renamed-training")


def test_the_data_snapshot_is_the_contracts(project: Path):
    (project / "data" / "mine.csv").write_text("x\n1\n")
    edit_contract(project, data="data/mine.csv")
    assert ProjectSettings().data_snapshot == project / "data" / "mine.csv"


def test_an_edited_contract_is_read_again(project: Path):
    assert ProjectSettings().contract.name == CONTRACT.name
    edit_contract(project, name="edited-model")
    assert ProjectSettings().contract.name == "edited-model"


def test_nothing_in_the_package_names_the_example_or_the_test_project():
    """The example lives in the user's files (contract.yml, train.py, data/); the package only reads them."""
    named = [contract.in_root(REPO), CONTRACT]
    words = {name for project in named for name in [project.name, *project.columns] if name != "target"}
    pattern = re.compile(  # `target` is also a plain word
        r"diabetes|" + "|".join(rf"[\"']{re.escape(word)}[\"']" for word in sorted(words)), flags=re.IGNORECASE
    )
    found = [
        f"{path.relative_to(REPO)}:{number}: {line.strip()}"
        for path in sorted(PACKAGE_DIR.rglob("*.py"))
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1)
        if pattern.search(line)
    ]
    assert found == []


def test_a_project_without_a_contract_gets_a_clear_error_not_a_settings_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
):
    from amlops.cli.main import main

    monkeypatch.setenv("AMLOPS_ROOT", str(tmp_path))
    assert main(["models", "list"]) == 2
    assert f"{tmp_path / 'contract.yml'}: no contract file" in caplog.text
    assert "environment variable" not in caplog.text
