"""The model: how it is built, fitted, measured, plotted and saved as an MLflow model folder."""

from __future__ import annotations

from importlib.metadata import version as installed_version
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from amlops.core.contract import Contract
from amlops.core.settings import ProjectSettings
from amlops.ml import metrics as metrics_lib
from amlops.ml import plots
from amlops.ml.data import features_and_target
from amlops.scoring.model import load_model

if TYPE_CHECKING:  # scikit-learn is imported where used: listing models does not need it
    from sklearn.pipeline import Pipeline

#: Packages the scoring side needs to load the saved model (versions are those installed, i.e. the lock's).
SCORING_REQUIREMENTS = ("scikit-learn", "numpy", "scipy", "skops")


def build(alpha: float) -> Pipeline:
    """An unfitted standardise-then-Ridge pipeline."""
    from sklearn.linear_model import Ridge
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    return Pipeline([("scale", StandardScaler()), ("ridge", Ridge(alpha=alpha))])


def _contract(contract: Contract | None) -> Contract:
    return contract or ProjectSettings().contract


def matrix(frame: pd.DataFrame, contract: Contract | None = None) -> np.ndarray:
    """The feature columns of a table (the contract's, the project's by default) as a float matrix in model order."""
    return frame.loc[:, list(_contract(contract).feature_names)].to_numpy(dtype=np.float64)


def fit(train: pd.DataFrame, alpha: float, contract: Contract | None = None) -> Pipeline:
    """Fit the model on a validated training table. Deterministic for the same data and alpha."""
    features, target = features_and_target(train, _contract(contract))
    return build(alpha).fit(features.to_numpy(dtype=np.float64), target.to_numpy(dtype=np.float64))


def predict(model: Pipeline, frame: pd.DataFrame) -> np.ndarray:
    """Predictions for the rows of a table."""
    return model.predict(matrix(frame))


def metrics(model: Pipeline, frame: pd.DataFrame, contract: Contract | None = None) -> dict[str, float]:
    """The contract task's metrics of the model on a labelled table, the primary one first."""
    contract = _contract(contract)
    _, target = features_and_target(frame, contract)
    return metrics_lib.measure(model, matrix(frame, contract), target.to_numpy(), contract)


def save_plots(model: Pipeline, frame: pd.DataFrame, folder: Path, title: str) -> list[Path]:
    """Save predicted-vs-actual/residual plots and a residual histogram of the model on a labelled table.

    Returns:
        The PNG files written.
    """
    _, actual = features_and_target(frame, _contract(None))
    predicted = predict(model, frame)
    return [
        plots.save(plots.residuals(actual, predicted, title), Path(folder) / "predicted_vs_actual_and_residuals.png"),
        plots.save(plots.residual_histogram(actual, predicted, title), Path(folder) / "residual_histogram.png"),
    ]


def compare_alphas(
    train: pd.DataFrame, test: pd.DataFrame, alphas: list[float], folds: int = 5, seed: int = 42
) -> pd.DataFrame:
    """Fit one model per alpha and tabulate cross-validated, train and test metrics.

    Choose alpha by ``cv_rmse`` (k-fold on the train split); the test columns are for reporting only,
    since choosing on the test split would leak it into the model.

    Returns:
        One row per alpha with ``cv_rmse``, ``train_<metric>`` and ``test_<metric>`` columns.
    """
    from sklearn.model_selection import KFold, cross_val_score

    features, target = features_and_target(train, _contract(None))
    splitter = KFold(n_splits=folds, shuffle=True, random_state=seed)
    rows = []
    for alpha in alphas:
        scores = cross_val_score(
            build(alpha),
            features.to_numpy(dtype=np.float64),
            target.to_numpy(dtype=np.float64),
            cv=splitter,
            scoring="neg_root_mean_squared_error",
        )
        rows.append({"alpha": alpha, "cv_rmse": float(-scores.mean()), **fit_and_measure(train, test, alpha)[1]})
    return pd.DataFrame(rows)


def fit_and_measure(train: pd.DataFrame, test: pd.DataFrame, alpha: float) -> tuple[Pipeline, dict[str, float]]:
    """Fit on the train table and measure on both.

    Returns:
        The fitted model and metrics named ``train_<m>`` and ``test_<m>`` for each of rmse, mae, r2.
    """
    fitted = fit(train, alpha)
    measured = {f"train_{k}": v for k, v in metrics(fitted, train).items()}
    measured |= {f"test_{k}": v for k, v in metrics(fitted, test).items()}
    return fitted, measured


def save_mlflow_model(model: Pipeline, example: pd.DataFrame, path: Path) -> Path:
    """Save the model as an MLflow model folder (skops format, column signature, input example).

    Args:
        model: The fitted pipeline.
        example: A few rows of features, in model order, to record as the input example.
        path: The folder to create; must not exist yet.
    """
    import mlflow.sklearn
    from mlflow.models import infer_signature

    features = example.loc[:, list(_contract(None).feature_names)].astype(np.float64)
    signature = infer_signature(features, model.predict(features.to_numpy()))
    mlflow.sklearn.save_model(
        model,
        path=str(path),
        serialization_format=mlflow.sklearn.SERIALIZATION_FORMAT_SKOPS,
        signature=signature,
        input_example=features.head(2),
        pip_requirements=[f"{name}=={installed_version(name)}" for name in SCORING_REQUIREMENTS],
    )
    return Path(path)


def load_mlflow_model(path: Path) -> Pipeline:
    """Load a model folder saved by :func:`save_mlflow_model` (the same loader the endpoint uses)."""
    return load_model(Path(path)).estimator
