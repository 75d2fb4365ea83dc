"""Figures people would rather see than read: data, residuals, model comparisons, latencies.

Each function returns a matplotlib ``Figure``; notebooks display it, the pipeline saves it as a run
artifact with :func:`save`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

if TYPE_CHECKING:  # matplotlib is imported where a figure is drawn: listing models does not need it
    from matplotlib.figure import Figure


def save(figure: Figure, path: Path, dpi: int = 110) -> Path:
    """Write a figure as PNG and release it."""
    import matplotlib.pyplot as plt

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=dpi)
    plt.close(figure)
    return path


def feature_distributions(frame: pd.DataFrame, target: str) -> Figure:
    """One histogram (or bar chart, for text) per column of the table, the ``target`` column in green."""
    import matplotlib.pyplot as plt

    columns = list(frame.columns)
    width = min(4, len(columns))
    rows = -(-len(columns) // width)
    figure, axes = plt.subplots(rows, width, figsize=(3.25 * width, 2.7 * rows), squeeze=False)
    for axis, column in zip(axes.flat, columns, strict=False):
        color = "tab:green" if column == target else "tab:blue"
        if pd.api.types.is_numeric_dtype(frame[column]):
            axis.hist(frame[column], bins=25, color=color)
        else:
            counts = frame[column].value_counts()
            axis.bar(counts.index.astype(str), counts.to_numpy(), color=color)
        axis.set_title(column)
    for axis in list(axes.flat)[len(columns) :]:
        axis.axis("off")
    figure.suptitle(f"Distributions ({len(frame)} rows)")
    figure.tight_layout()
    return figure


def target_correlations(frame: pd.DataFrame, target: str) -> Figure:
    """Pearson correlation of each numeric feature with the target, sorted.

    With a numeric target, one bar per feature. With class labels, the correlation with each class's indicator
    (with two classes, the second one's: the first's is its mirror image).
    """
    import matplotlib.pyplot as plt

    features = frame.select_dtypes("number").drop(columns=[target], errors="ignore")
    if pd.api.types.is_numeric_dtype(frame[target]):
        series = {target: frame[target]}
    else:
        classes = sorted(frame[target].unique(), key=str)
        series = {
            f"{target} = {label}": frame[target].eq(label).astype(float) for label in classes[len(classes) == 2 :]
        }
    correlations = pd.DataFrame({name: features.corrwith(values) for name, values in series.items()})
    correlations = correlations.sort_values(correlations.columns[0])
    figure, axis = plt.subplots(figsize=(7, max(4.0, 0.25 * correlations.size)))
    height = 0.8 / len(series)
    positions = np.arange(len(correlations))
    for offset, name in enumerate(correlations.columns):
        values = correlations[name].to_numpy()
        color = np.where(values < 0, "tab:red", "tab:blue") if len(series) == 1 else None
        axis.barh(positions + offset * height, values, height=height, color=color, label=name)
    axis.set_yticks(positions + height * (len(series) - 1) / 2, correlations.index)
    axis.axvline(0, color="black", linewidth=0.8)
    label = next(iter(series)) if len(series) == 1 else "each class"
    axis.set(xlabel=f"correlation with {label}", title="Which features carry signal")
    if len(series) > 1:
        axis.legend()
    figure.tight_layout()
    return figure


def residuals(actual: np.ndarray, predicted: np.ndarray, title: str) -> Figure:
    """Predicted-vs-actual scatter beside residuals-vs-predicted."""
    import matplotlib.pyplot as plt

    actual, predicted = np.asarray(actual, dtype=float), np.asarray(predicted, dtype=float)
    residual = actual - predicted
    figure, (left, right) = plt.subplots(1, 2, figsize=(11, 4.5))
    low, high = float(min(actual.min(), predicted.min())), float(max(actual.max(), predicted.max()))
    left.scatter(actual, predicted, s=14, alpha=0.7)
    left.plot([low, high], [low, high], color="black", linewidth=1, linestyle="--", label="perfect")
    left.set(xlabel="actual", ylabel="predicted", title="Predicted vs actual")
    left.legend()
    right.scatter(predicted, residual, s=14, alpha=0.7)
    right.axhline(0, color="black", linewidth=1, linestyle="--")
    right.set(xlabel="predicted", ylabel="actual - predicted", title="Residuals")
    figure.suptitle(title)
    figure.tight_layout()
    return figure


def residual_histogram(actual: np.ndarray, predicted: np.ndarray, title: str) -> Figure:
    """Distribution of residuals."""
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(6, 4))
    axis.hist(np.asarray(actual, dtype=float) - np.asarray(predicted, dtype=float), bins=30)
    axis.set(xlabel="actual - predicted", ylabel="rows", title=f"Residual distribution — {title}")
    figure.tight_layout()
    return figure


def comparison(results: pd.DataFrame, param: str, metric: str) -> Figure:
    """Cross-validated, train and test ``metric`` per value of one hyperparameter, from ``model.compare``."""
    import matplotlib.pyplot as plt

    results = results.sort_values(param)
    figure, axis = plt.subplots(figsize=(7, 4))
    axis.plot(results[param], results[f"train_{metric}"], marker="o", label="train")
    axis.plot(results[param], results[f"cv_{metric}"], marker="o", label="cross-validated (train split)")
    axis.plot(results[param], results[f"test_{metric}"], marker="o", linestyle="--", label="test (reported only)")
    positive = pd.api.types.is_numeric_dtype(results[param]) and (results[param] > 0).all()
    axis.set(xscale="log" if positive else "linear", xlabel=param, ylabel=metric, title=f"{metric} by {param}")
    axis.legend()
    figure.tight_layout()
    return figure


def confusion(actual: np.ndarray, predicted: np.ndarray, title: str) -> Figure:
    """The confusion matrix of a classifier: true labels down, predicted across, with the counts."""
    import matplotlib.pyplot as plt

    labels = sorted(set(np.asarray(actual).tolist()) | set(np.asarray(predicted).tolist()), key=str)
    index = {label: number for number, label in enumerate(labels)}
    counts = np.zeros((len(labels), len(labels)), dtype=int)
    for true, guess in zip(np.asarray(actual).tolist(), np.asarray(predicted).tolist(), strict=True):
        counts[index[true], index[guess]] += 1
    figure, axis = plt.subplots(figsize=(1.2 * len(labels) + 3, 1.1 * len(labels) + 2))
    axis.imshow(counts, cmap="Blues")
    for row in range(len(labels)):
        for column in range(len(labels)):
            axis.text(column, row, str(counts[row, column]), ha="center", va="center")
    ticks = range(len(labels))
    axis.set(xticks=ticks, yticks=ticks, xticklabels=labels, yticklabels=labels)
    axis.set(xlabel="predicted", ylabel="true", title=title)
    figure.tight_layout()
    return figure


def latency_histogram(latencies_ms: Sequence[float], title: str) -> Figure:
    """Request latencies with their p50 and p99 marked."""
    import matplotlib.pyplot as plt

    values = np.asarray(latencies_ms, dtype=float)
    p50, p99 = np.percentile(values, [50, 99])
    figure, axis = plt.subplots(figsize=(7, 4))
    axis.hist(values, bins=40)
    axis.axvline(p50, color="tab:green", linestyle="--", label=f"p50 {p50:.2f} ms")
    axis.axvline(p99, color="tab:red", linestyle="--", label=f"p99 {p99:.2f} ms")
    axis.set(xlabel="latency (ms)", ylabel="requests", title=title)
    axis.legend()
    figure.tight_layout()
    return figure
