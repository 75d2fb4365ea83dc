"""Any scikit-learn classifier: string labels in their own type, probabilities per class, 400 and never 500.

A tiny synthetic contract and a real fitted model, independent of the example's data.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import mlflow.sklearn
import numpy as np
import pandas as pd
import pytest
import skops.io as sio
from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
from sklearn.linear_model import LogisticRegression, RidgeClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler

from amlops.core.contract import Contract
from amlops.core.settings import ScoringSettings
from amlops.ml import model
from amlops.scoring.model import UntrustedModelError, load_model
from amlops.scoring.openapi import openapi_spec
from amlops.scoring.service import ScoringService
from tests.support.scoring import body

CONTRACT = Contract.model_validate(
    {
        "name": "tiny-classifier",
        "data": "data/tiny.csv",
        "task": "classification",
        "target": {"name": "diagnosis", "type": "str", "categories": ["benign", "malignant"]},
        "features": [{"name": "size", "range": [0, 10]}, {"name": "grade", "categories": [1, 2, 3]}],
        "metric": {"name": "accuracy", "direction": "maximize"},
        "gate": {"limits": {"accuracy": {"min": 0.6}}},
        "params": {"c": {"type": "float", "default": 1.0}},
    }
)


@pytest.fixture(scope="module")
def table() -> pd.DataFrame:
    rng = np.random.default_rng(7)
    size = rng.uniform(0, 10, 200)
    grade = rng.integers(1, 4, 200).astype(float)
    diagnosis = np.where(size + 2 * grade + rng.normal(0, 1.5, 200) > 9, "malignant", "benign")
    return pd.DataFrame({"size": size, "grade": grade, "diagnosis": diagnosis})


def logistic(c: float):
    return make_pipeline(StandardScaler(), LogisticRegression(C=c))


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory, table: pd.DataFrame) -> Path:
    fitted = model.fit(logistic, {"c": 1.0}, table, CONTRACT)
    return model.save_mlflow_model(fitted, table, tmp_path_factory.mktemp("clf") / "model", CONTRACT)


@pytest.fixture(scope="module")
def service(folder: Path) -> ScoringService:
    return ScoringService(load_model(folder, "tiny-classifier", "1"))


def test_labels_come_back_as_strings_with_probabilities_per_class(service: ScoringService):
    status, payload = service.handle(body([[1.0, 1], [9.5, 3]]))
    assert status == 200
    assert payload["predictions"] == ["benign", "malignant"]
    assert [sorted(p) for p in payload["probabilities"]] == [["benign", "malignant"]] * 2
    assert all(abs(sum(p.values()) - 1) < 1e-9 for p in payload["probabilities"])
    assert payload["probabilities"][0]["benign"] > 0.5
    assert payload["model"] == {"name": "tiny-classifier", "version": "1"}
    status, answer = service.respond(body([[1.0, 1]] * 30))  # the server's entry point: the same document
    assert status == 200
    assert answer["predictions"] == ["benign"] * 30


def test_probabilities_can_be_switched_off(folder: Path):
    quiet = ScoringService(load_model(folder), ScoringSettings(probabilities=False))
    status, payload = quiet.handle(body([[1.0, 1]]))
    assert status == 200
    assert set(payload) == {"predictions", "model"}


@pytest.mark.parametrize(
    ("row", "named"),
    [([11.0, 1], "column 'size': 11 is outside the range [0, 10]"), ([1.0, 4], "column 'grade': 4 is not one of")],
)
def test_a_value_outside_the_contract_is_a_400_naming_the_column(service: ScoringService, row: list, named: str):
    status, payload = service.handle(body([[1.0, 1], row]))
    assert status == 400
    assert payload["message"].startswith(f"row 1, {named}")


def test_values_that_overflow_the_model_are_a_400_not_a_500(folder: Path):
    """Without the contract's ranges, 1e308 reaches the model: its arithmetic overflows, which is a 400."""
    bare = load_model(folder)
    bare.rules = None
    service = ScoringService(bare)
    status, payload = service.handle(body([[1.0, 1], [1e308, 1.7e308]]))
    assert status == 400, payload
    assert payload["message"].startswith("row 1: values are too large")


def test_a_classifier_without_predict_proba_answers_labels_only(tmp_path: Path, table: pd.DataFrame):
    fitted = model.fit(lambda c: make_pipeline(StandardScaler(), RidgeClassifier(alpha=c)), {"c": 1.0}, table, CONTRACT)
    folder = model.save_mlflow_model(fitted, table, tmp_path / "model", CONTRACT)
    status, payload = ScoringService(load_model(folder)).handle(body([[1.0, 1], [9.5, 3]]))
    assert status == 200
    assert payload["predictions"] == ["benign", "malignant"]
    assert "probabilities" not in payload
    assert "log_loss" not in model.metrics(fitted, table, CONTRACT)


def test_training_measures_the_classification_metrics(table: pd.DataFrame):
    train, test = table.iloc[:150], table.iloc[150:]
    fitted, measured = model.fit_and_measure(logistic, {"c": 1.0}, train, test, CONTRACT)
    assert list(measured)[:4] == ["train_accuracy", "train_balanced_accuracy", "train_f1_macro", "train_log_loss"]
    assert measured["test_accuracy"] > 0.7
    assert sorted(model.figures(fitted, test, "t", CONTRACT)) == ["confusion_matrix.png"]


def test_the_openapi_document_describes_labels_and_probabilities(service: ScoringService):
    model_ = service.model
    spec = openapi_spec(model_.features, "tiny-classifier", "1", ScoringSettings(), model_.classes, model_.rules)
    answer = spec["components"]["schemas"]["ServiceOutput"]["properties"]
    assert answer["predictions"]["items"] == {"type": "string", "enum": ["benign", "malignant"]}
    assert sorted(answer["probabilities"]["items"]["properties"]) == ["benign", "malignant"]
    row = spec["components"]["schemas"]["ServiceInput"]["properties"]["data"]["items"]["oneOf"][1]
    assert row["properties"]["grade"]["enum"] == [1.0, 2.0, 3.0]
    assert (row["properties"]["size"]["minimum"], row["properties"]["size"]["maximum"]) == (0.0, 10.0)
    assert spec["components"]["schemas"]["ServiceInput"]["example"] == {"data": [[5.0, 1.0]]}


def test_the_signal_plot_correlates_each_feature_with_a_class(table: pd.DataFrame):
    from amlops.ml import plots

    axis = plots.target_correlations(table, "diagnosis").axes[0]
    assert axis.get_xlabel() == "correlation with diagnosis = malignant"  # two classes: one indicator
    assert [label.get_text() for label in axis.get_yticklabels()] == ["grade", "size"]  # sorted, weakest first
    three = table.assign(diagnosis=np.where(table["size"] > 7, "severe", table["diagnosis"]))
    assert len(plots.target_correlations(three, "diagnosis").axes[0].patches) == 2 * 3  # a bar per feature and class


@pytest.mark.parametrize(
    "estimator",
    [
        lambda c: RandomForestClassifier(n_estimators=5, max_depth=3, random_state=0),  # sklearn.tree._tree.Tree
        lambda c: HistGradientBoostingClassifier(max_iter=5, random_state=0),  # ...predictor.TreePredictor
    ],
    ids=["forest", "gradient-boosting"],
)
def test_tree_models_are_saved_and_served_trusting_scikit_learns_own_types(
    tmp_path: Path, table: pd.DataFrame, estimator
):
    """Types skops does not trust by default, but scikit-learn's own: saved, served, and loaded by MLflow too."""
    fitted = model.fit(estimator, {"c": 1.0}, table, CONTRACT)
    folder = model.save_mlflow_model(fitted, table, tmp_path / "model", CONTRACT)
    rows = [[1.0, 1], [9.5, 3], [5.0, 2]]
    expected = fitted.predict(np.array(rows)).tolist()
    status, payload = ScoringService(load_model(folder)).handle(body(rows))
    assert status == 200
    assert payload["predictions"] == expected
    assert mlflow.sklearn.load_model(str(folder)).predict(np.array(rows)).tolist() == expected


def double(values):
    """A function of the user's, which skops saves by name and the endpoint could not import."""
    return 2 * values


def test_a_model_holding_a_function_of_the_users_is_refused_before_it_is_saved(tmp_path: Path, table: pd.DataFrame):
    fitted = model.fit(
        lambda c: make_pipeline(FunctionTransformer(double), LogisticRegression(C=c)), {"c": 1.0}, table, CONTRACT
    )
    with pytest.raises(UntrustedModelError, match=r"build\(\) returned: .*test_classifier\.double"):
        model.save_mlflow_model(fitted, table, tmp_path / "model", CONTRACT)
    assert not (tmp_path / "model").exists()


def test_the_endpoint_refuses_a_model_file_holding_other_types(tmp_path: Path, folder: Path, table: pd.DataFrame):
    changed = tmp_path / "model"
    shutil.copytree(folder, changed)
    fitted = model.fit(
        lambda c: make_pipeline(FunctionTransformer(double), LogisticRegression(C=c)), {"c": 1.0}, table, CONTRACT
    )
    sio.dump(fitted, changed / "model.skops")
    with pytest.raises(UntrustedModelError, match=r"model\.skops: .*test_classifier\.double"):
        load_model(changed)


FOREST = Contract.model_validate(
    CONTRACT.model_dump(mode="json")
    | {"params": {"trees": {"type": "int", "default": 8, "search": [2, 8]}, "depth": {"type": "int", "default": 3}}}
)


def forest(trees: int, depth: int) -> RandomForestClassifier:
    return RandomForestClassifier(n_estimators=trees, max_depth=depth, random_state=0)


def test_comparing_candidates_chooses_the_best_cross_validated_one_with_its_types(table: pd.DataFrame):
    """Only numbers in the table: a row of it is a float Series, where trees=8 reads as 8.0."""
    train, test = table.iloc[:150], table.iloc[150:]
    comparison = model.compare(forest, FOREST.candidates(), train, test, FOREST, folds=3)
    assert comparison[["trees", "depth"]].to_dict("records") == [{"trees": 2, "depth": 3}, {"trees": 8, "depth": 3}]
    chosen = model.best(comparison, FOREST, FOREST.params)
    assert (
        comparison.loc[comparison["trees"] == chosen["trees"], "cv_accuracy"].item() == comparison["cv_accuracy"].max()
    )
    assert [type(chosen[name]) for name in ("trees", "depth")] == [int, int]
    model.fit_and_measure(forest, chosen, train, test, FOREST)  # scikit-learn refuses n_estimators=8.0


def test_a_class_the_model_never_saw_counts_as_probability_zero_in_the_log_loss(table: pd.DataFrame):
    """A class added to contract.yml since production was trained: production is still measured on the new rows."""
    fitted = model.fit(logistic, {"c": 1.0}, table, CONTRACT)
    three = Contract.model_validate(
        CONTRACT.model_dump(mode="json")
        | {"target": {"name": "diagnosis", "type": "str", "categories": ["benign", "malignant", "unclear"]}}
    )
    rows = table.head(20).assign(diagnosis=["unclear"] * 2 + list(table["diagnosis"].head(18)))
    measured = model.metrics(fitted, rows, three)
    known = model.metrics(fitted, rows.iloc[2:], three)
    eps = np.finfo(np.float64).eps
    assert measured["log_loss"] == pytest.approx((18 * known["log_loss"] - 2 * np.log(eps)) / 20)
    assert measured["accuracy"] == pytest.approx(known["accuracy"] * 18 / 20)
