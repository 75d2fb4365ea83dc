"""The metrics of each task, measured the same way by training, the gate and the efficacy check."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from amlops.core.contract import METRICS, Contract


def measure(estimator, features, target, contract: Contract) -> dict[str, float]:
    """Every metric of the contract's task for a fitted estimator on labelled rows.

    ``log_loss`` is measured only where the estimator has ``predict_proba``.

    Args:
        estimator: A fitted scikit-learn estimator.
        features: The feature matrix or table, in model order.
        target: The true values or labels.
        contract: The data and model contract (its task).

    Raises:
        ValueError: the primary metric cannot be measured for this estimator.
    """
    from sklearn import metrics as sk  # heavy: only where something is measured

    predicted = estimator.predict(features)
    target = np.asarray(target)
    if contract.task == "regression":
        measured = {
            "rmse": float(np.sqrt(sk.mean_squared_error(target, predicted))),
            "mae": float(sk.mean_absolute_error(target, predicted)),
            "r2": float(sk.r2_score(target, predicted)),
        }
    else:
        measured = {
            "accuracy": float(sk.accuracy_score(target, predicted)),
            "balanced_accuracy": float(sk.balanced_accuracy_score(target, predicted)),
            "f1_macro": float(sk.f1_score(target, predicted, average="macro", zero_division=0)),
        }
        if hasattr(estimator, "predict_proba"):
            measured["log_loss"] = _log_loss(estimator.classes_, estimator.predict_proba(features), target)
    if contract.metric.name not in measured:
        raise ValueError(f"metric {contract.metric.name!r} needs an estimator with predict_proba")
    return {name: measured[name] for name in contract.metric_names if name in measured}


def _log_loss(classes: np.ndarray, probabilities: np.ndarray, target: np.ndarray) -> float:
    """Log loss, counting a label the model never saw (a class added to the contract since) as probability 0."""
    from sklearn.metrics import log_loss

    labels = np.union1d(classes, target)  # sorted, as log_loss takes the columns to be
    if len(labels) > len(classes):
        full = np.zeros((len(probabilities), len(labels)))
        full[:, np.searchsorted(labels, classes)] = probabilities
        probabilities = full
    return float(log_loss(target, probabilities, labels=labels))


def line(values: Mapping[str, float], names: tuple[str, ...] | None = None) -> str:
    """Metrics as one line of text: ``rmse 53.85  mae 42.79  r2 0.4526``."""
    return "  ".join(f"{name} {values[name]:.4g}" for name in (names or tuple(values)) if name in values)


def direction(task: str, name: str) -> str:
    """``minimize`` or ``maximize`` for a metric of a task."""
    return METRICS[task][name]
