"""The plumbing around the user's estimator: fitting, measuring, comparing, plotting and saving it.

The estimator itself is the user's: ``build(**params)`` in ``train.py`` returns it unfitted, with the
hyperparameters ``contract.yml`` declares. These functions work for any scikit-learn regressor or classifier.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from importlib.metadata import version as installed_version
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from amlops.core.contract import Contract
from amlops.ml import metrics as metrics_lib
from amlops.ml import plots
from amlops.ml.data import features_and_target
from amlops.scoring.model import MODEL_LIBRARIES, load_model, trusted_types
from amlops.scoring.rules import MODEL_CONTRACT_FILE

#: ``train.py``'s ``build(**params)``: an unfitted scikit-learn estimator.
Build = Callable[..., Any]


def matrix(frame: pd.DataFrame, contract: Contract, columns: Sequence[str] | None = None) -> np.ndarray:
    """The contract's feature columns (or ``columns``, a model's own) of a table as a float matrix in model order."""
    return frame.loc[:, list(columns or contract.feature_names)].to_numpy(dtype=np.float64)


def fit(build: Build, params: dict[str, Any], train: pd.DataFrame, contract: Contract):
    """``build(**params)`` fitted on a validated training table (deterministic if the estimator is)."""
    _, target = features_and_target(train, contract)
    return build(**params).fit(matrix(train, contract), target.to_numpy())


def metrics(model, frame: pd.DataFrame, contract: Contract, columns: Sequence[str] | None = None) -> dict[str, float]:
    """The contract task's metrics of a fitted model on a labelled table, the primary one first.

    Args:
        model: The fitted estimator.
        frame: The labelled table.
        contract: The data and model contract (the task, the target, the features).
        columns: The columns the model takes, if not the contract's features: a registered version's own, which
            an edited contract may have changed since (``LoadedModel.features``).
    """
    _, target = features_and_target(frame, contract)
    return metrics_lib.measure(model, matrix(frame, contract, columns), target.to_numpy(), contract)


def fit_and_measure(
    build: Build, params: dict[str, Any], train: pd.DataFrame, test: pd.DataFrame, contract: Contract
) -> tuple[Any, dict[str, float]]:
    """Fit on the train table and measure on both.

    Returns:
        The fitted model and metrics named ``train_<m>`` and ``test_<m>`` for each of the task's metrics.
    """
    fitted = fit(build, params, train, contract)
    measured = {f"train_{k}": v for k, v in metrics(fitted, train, contract).items()}
    measured |= {f"test_{k}": v for k, v in metrics(fitted, test, contract).items()}
    return fitted, measured


def compare(
    build: Build,
    candidates: Iterable[dict[str, Any]],
    train: pd.DataFrame,
    test: pd.DataFrame,
    contract: Contract,
    folds: int = 5,
    seed: int = 42,
) -> pd.DataFrame:
    """Fit one model per set of hyperparameters and tabulate cross-validated, train and test metrics.

    Choose by ``cv_<primary metric>`` (k-fold on the train split, :func:`best`); the test columns are for
    reporting only, since choosing on the test split would leak it into the model.

    Returns:
        One row per candidate: its hyperparameters, ``cv_<metric>``, ``train_<m>`` and ``test_<m>`` columns.
    """
    from sklearn.model_selection import KFold, StratifiedKFold

    name = contract.metric.name
    splitter = (StratifiedKFold if contract.task == "classification" else KFold)(
        n_splits=folds, shuffle=True, random_state=seed
    )
    _, target = features_and_target(train, contract)
    rows = []
    for params in candidates:
        scores = []
        for fold_train, fold_test in splitter.split(matrix(train, contract), target):
            fitted = fit(build, params, train.iloc[fold_train], contract)
            scores.append(metrics(fitted, train.iloc[fold_test], contract)[name])
        measured = fit_and_measure(build, params, train, test, contract)[1]
        rows.append({**params, f"cv_{name}": float(np.mean(scores)), **measured})
    return pd.DataFrame(rows)


def best(comparison: pd.DataFrame, contract: Contract, params: Iterable[str]) -> dict[str, Any]:
    """The hyperparameters of :func:`compare`'s best row by the cross-validated primary metric.

    Each value is read from its own column, so it keeps its type: a row of a table of numbers only is a float
    Series, in which an ``int`` such as ``max_depth=5`` reads as ``5.0``, which scikit-learn refuses.
    """
    column = comparison[f"cv_{contract.metric.name}"]
    label = column.idxmin() if contract.metric.direction == "minimize" else column.idxmax()
    return {name: _plain(comparison.at[label, name]) for name in params}


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def figures(model, frame: pd.DataFrame, title: str, contract: Contract) -> dict[str, Any]:
    """The model's plots on a labelled table by file name: residuals for a regression, else the confusion matrix."""
    _, actual = features_and_target(frame, contract)
    predicted = model.predict(matrix(frame, contract))
    if contract.task == "classification":
        return {"confusion_matrix.png": plots.confusion(actual, predicted, title)}
    return {
        "predicted_vs_actual_and_residuals.png": plots.residuals(actual, predicted, title),
        "residual_histogram.png": plots.residual_histogram(actual, predicted, title),
    }


def save_plots(model, frame: pd.DataFrame, folder: Path, title: str, contract: Contract) -> list[Path]:
    """Save :func:`figures` as PNG files in ``folder`` and return their paths."""
    return [plots.save(figure, Path(folder) / name) for name, figure in figures(model, frame, title, contract).items()]


def save_mlflow_model(model, example: pd.DataFrame, path: Path, contract: Contract) -> Path:
    """Save the model as an MLflow model folder (skops format, column signature, input example).

    The types skops does not trust by default (a forest's trees, say) are recorded as trusted if they are
    scikit-learn's, NumPy's or SciPy's, as the endpoint trusts them; a model holding any other is refused here,
    before it is registered, rather than by the endpoint.

    Args:
        model: The fitted estimator.
        example: A few rows with the contract's features, to record as the input example.
        path: The folder to create; must not exist yet.
        contract: The data and model contract (the feature order).

    Raises:
        UntrustedModelError: the model holds types from outside scikit-learn, NumPy and SciPy (a function of
            ``train.py``'s, say), naming them.
    """
    import mlflow.sklearn
    import skops.io as sio
    from mlflow.models import infer_signature

    trusted = trusted_types(sio.get_untrusted_types(data=sio.dumps(model)), "the estimator train.py's build() returned")

    features = example.loc[:, list(contract.feature_names)].astype(np.float64)
    signature = infer_signature(features, model.predict(features.to_numpy()))
    mlflow.sklearn.save_model(
        model,
        path=str(path),
        serialization_format=mlflow.sklearn.SERIALIZATION_FORMAT_SKOPS,
        signature=signature,
        input_example=features.head(2),
        skops_trusted_types=trusted or None,
        pip_requirements=[f"{name}=={installed_version(name)}" for name in MODEL_LIBRARIES],
    )
    # The rules the endpoint applies to requests: the contract this model was trained under.
    served = contract.model_dump(mode="json", include={"name", "task", "target", "features"})
    if hasattr(model, "classes_"):  # what a classifier answers, for the endpoint's OpenAPI document
        served["classes"] = np.asarray(model.classes_).tolist()
    (Path(path) / MODEL_CONTRACT_FILE).write_text(json.dumps(served, indent=2) + "\n", encoding="utf-8")
    return Path(path)


def load_mlflow_model(path: Path):
    """Load a model folder saved by :func:`save_mlflow_model` (the same loader the endpoint uses)."""
    return load_model(Path(path)).estimator
