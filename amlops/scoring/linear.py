"""The linear fast path: ``StandardScaler`` steps and a ``Ridge`` or ``LinearRegression``, read without scikit-learn.

The same arithmetic on the same fitted arrays gives the same predictions, without ~1 s of imports and ~100 MB per
worker. It is an optional accelerator: any other model is loaded by skops and scikit-learn
(:mod:`amlops.scoring.model`).
"""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

#: Batches of up to this many rows are predicted in plain Python (:meth:`LinearPipeline.predict_rows`).
PYTHON_ROWS = 8


#: From this many rows on, :meth:`LinearPipeline.predict` uses the folded map (one pass over the matrix)...
FOLD_FROM_ROWS = 64


#: ...for inputs where it provably stays this close to scikit-learn's arithmetic (half the promised 1e-9).
FOLD_TOLERANCE = 5e-10


#: The linear estimators :func:`read_linear_pipeline` understands: predict is ``X @ coef_ + intercept_``.
_LINEAR_ESTIMATORS = frozenset(
    {("sklearn.linear_model._ridge", "Ridge"), ("sklearn.linear_model._base", "LinearRegression")}
)


_STANDARD_SCALER = ("sklearn.preprocessing._data", "StandardScaler")


class LinearPipeline:
    """What a fitted ``StandardScaler`` → ``Ridge``/``LinearRegression`` pipeline computes, step by step.

    :meth:`predict` does scikit-learn's own arithmetic in scikit-learn's order (``X -= mean_``,
    ``X /= scale_``, ``X @ coef_ + intercept_``) on the fitted arrays, so it returns the same numbers as the
    estimator's ``predict``, without its input validation (~190 µs a call) or its imports.
    :meth:`predict_rows` does the same in plain Python for a few rows, where numpy's per-call overhead is
    most of the cost.

    Args:
        scalers: ``(mean_ or None, scale_ or None)`` of each ``StandardScaler`` step, in pipeline order.
        coef: ``coef_`` of the final estimator (one target).
        intercept: Its ``intercept_``.
    """

    def __init__(
        self, scalers: tuple[tuple[np.ndarray | None, np.ndarray | None], ...], coef: np.ndarray, intercept: float
    ):
        self.scalers = scalers
        self.coef = coef
        self.intercept = np.float64(intercept)
        self._row_scalers = [
            (None if mean is None else mean.tolist(), None if scale is None else scale.tolist())
            for mean, scale in scalers
        ]
        self._row_coef = coef.tolist()
        self._row_intercept = float(intercept)
        # The project's model (one scaler with mean and scale): the three steps in one comprehension.
        self._row_fused = None
        if len(scalers) == 1 and all(array is not None for array in scalers[0]):
            self._row_fused = list(zip(*self._row_scalers[0], self._row_coef, strict=True))
        # A dot product summed in another order than numpy's differs by at most 2·(n-1)·eps·Σ|term|: allow
        # plain Python only while that bound stays below 1e-10, far inside the 1e-9 the service promises.
        if any(scale is not None and not scale.all() for _, scale in scalers):
            self._max_abs_terms = -1.0  # a zero scale would divide by zero: numpy only
        else:
            self._max_abs_terms = 1e-10 / (2 * len(coef) * float(np.finfo(np.float64).eps))
        self._folded = self._fold()

    def _fold(self) -> tuple[np.ndarray, np.float64, float] | None:
        """``(w, b, bound)`` with ``X @ w + b`` within 5e-10 of :meth:`exact_predict` wherever ``|X| <= bound``.

        Only for one scaler with mean and scale. Both computations round: each differs from the exact value by
        at most ``(n + 3)·eps`` times the sum of the magnitudes it adds up, so their difference is at most
        ``2·(n + 3)·eps·(bound·Σ|w| + Σ|mean·w| + |intercept| + |b|)`` plus the rounding of ``w`` itself
        (``bound·Σ|w|·eps``); ``bound`` is the largest input magnitude that keeps this below 5e-10 (no
        intermediate can overflow there). The map is checked against :meth:`exact_predict` on probe rows at
        load time and not used if it disagrees.
        """
        if len(self.scalers) != 1 or any(array is None for array in self.scalers[0]):
            return None
        mean, scale = self.scalers[0]
        if not scale.all():
            return None
        weights = self.coef / scale
        offset = np.float64(self.intercept - (mean / scale) @ self.coef)
        eps = float(np.finfo(np.float64).eps)
        factor = 2 * (len(weights) + 3) * eps
        fixed = float(np.abs(mean * weights).sum() + abs(self.intercept) + abs(offset))
        per_unit = float(np.abs(weights).sum()) * (factor + eps)
        bound = (FOLD_TOLERANCE - factor * fixed) / per_unit if per_unit > 0 else 0.0
        if not bound > 0:
            return None
        probes = np.random.default_rng(0).uniform(-bound, bound, size=(256, len(weights)))
        probes[0], probes[1], probes[2] = mean, bound, -bound
        folded = probes @ weights + offset
        if not np.abs(folded - self.exact_predict(probes)).max() <= FOLD_TOLERANCE:
            return None
        return weights, offset, bound

    @property
    def n_features(self) -> int:
        """Number of input columns."""
        return len(self.coef)

    def predict(self, matrix: np.ndarray) -> np.ndarray:
        """Predictions for a float64 matrix; an overflow gives ``inf``/``nan`` (and a numpy warning).

        With every value within the folded map's bound, one matrix-vector product (``X @ w + b``, 5e-10 from
        :meth:`exact_predict`); otherwise :meth:`exact_predict`, which overflows exactly as scikit-learn does.
        """
        folded = self._folded
        if folded is not None and len(matrix) >= FOLD_FROM_ROWS:
            weights, offset, bound = folded
            if matrix.max() <= bound and matrix.min() >= -bound:
                predictions = matrix @ weights
                predictions += offset
                return predictions
        return self.exact_predict(matrix)

    def exact_predict(self, matrix: np.ndarray) -> np.ndarray:
        """scikit-learn's own arithmetic, in its order: ``X -= mean_``, ``X /= scale_``, ``X @ coef_ + intercept_``."""
        owned = False  # the first step copies (the input may be read-only), the next ones work in place
        for mean, scale in self.scalers:
            for array, operation in ((mean, np.subtract), (scale, np.true_divide)):
                if array is not None:
                    matrix = operation(matrix, array, out=matrix if owned else None)
                    owned = True
        predictions = matrix @ self.coef
        predictions += self.intercept
        return predictions

    def predict_rows(self, rows: list[list[int | float]]) -> list[float] | None:
        """Predictions for rows of Python numbers, in plain Python.

        Returns:
            ``None`` when a row holds values so large (or not finite) that the summation order could matter:
            :meth:`predict` then decides, exactly as scikit-learn would.
        """
        predictions = []
        fused = self._row_fused
        for row in rows:
            values = row
            try:
                if fused is not None:  # the same operations in the same order, (x - mean) / scale * coef
                    terms = [(x - m) / s * c for x, (m, s, c) in zip(row, fused, strict=True)]
                    total = sum(map(abs, terms))
                    if not total <= self._max_abs_terms:
                        return None
                    predictions.append(sum(terms) + self._row_intercept)
                    continue
                for mean, scale in self._row_scalers:
                    if mean is not None:
                        values = [x - m for x, m in zip(values, mean, strict=True)]
                    if scale is not None:
                        values = [x / s for x, s in zip(values, scale, strict=True)]
                terms = [x * c for x, c in zip(values, self._row_coef, strict=True)]
            except OverflowError:  # an integer too large for a float
                return None
            if not sum(map(abs, terms)) <= self._max_abs_terms:  # also false for NaN
                return None
            predictions.append(sum(terms) + self._row_intercept)
        return predictions


class _Unsupported(Exception):
    """The skops file holds something :func:`read_linear_pipeline` does not read."""


def read_linear_pipeline(model_path: Path) -> LinearPipeline | None:
    """Read a skops file as a :class:`LinearPipeline`, without skops or scikit-learn; ``None`` if it is not one.

    Understood: a ``Pipeline`` of ``StandardScaler`` steps ending in ``Ridge`` or ``LinearRegression`` with
    one target (or that estimator alone). Only the schema's JSON and ``.npy`` arrays are read (with
    ``allow_pickle=False``): no object of the file is constructed, so nothing in it can run code.

    Raises:
        FileNotFoundError: if the file does not exist. Anything else unexpected gives ``None``, so that the
            caller loads the file with skops, which reports it properly.
    """
    model_path = Path(model_path)
    try:
        with zipfile.ZipFile(model_path) as archive:
            schema = json.loads(archive.read("schema.json"))
            steps = _pipeline_steps(schema)
            scalers = tuple(_scaler_arrays(archive, step) for step in steps[:-1])
            coef, intercept = _linear_arrays(archive, steps[-1])
    except FileNotFoundError:
        raise
    except (_Unsupported, zipfile.BadZipFile, KeyError, TypeError, ValueError, AttributeError, OSError):
        return None
    width = len(coef)
    for mean, scale in scalers:
        if any(array is not None and array.shape != (width,) for array in (mean, scale)):
            return None
    return LinearPipeline(scalers, coef, intercept)


def _class_of(node: dict) -> tuple[str, str]:
    return node.get("__module__"), node.get("__class__")


def _object_attributes(node: dict) -> dict:
    if node.get("__loader__") != "ObjectNode":
        raise _Unsupported("not a plain object")
    content = node["content"]
    if content.get("__loader__") != "DictNode":
        raise _Unsupported("object state is not a dict")
    return content["content"]


def _pipeline_steps(schema: dict) -> list[dict]:
    """The estimator nodes of a ``Pipeline`` (or the lone estimator), checked to be scalers then a linear model."""
    if _class_of(schema) == ("sklearn.pipeline", "Pipeline"):
        steps_node = _object_attributes(schema)["steps"]
        if steps_node.get("__loader__") != "ListNode":
            raise _Unsupported("steps")
        steps = []
        for pair in steps_node["content"]:
            if pair.get("__loader__") != "TupleNode" or len(pair["content"]) != 2:
                raise _Unsupported("step")
            steps.append(pair["content"][1])
    else:
        steps = [schema]
    if not steps or _class_of(steps[-1]) not in _LINEAR_ESTIMATORS:
        raise _Unsupported("last step")
    if any(_class_of(step) != _STANDARD_SCALER for step in steps[:-1]):
        raise _Unsupported("a step other than StandardScaler")
    return steps


def _json_value(node: dict) -> Any:
    if node.get("__loader__") != "JsonNode" or not node.get("is_json"):
        raise _Unsupported("not a JSON value")
    return json.loads(node["content"])


def _array(archive: zipfile.ZipFile, node: dict, ndim: int) -> np.ndarray:
    if node.get("__loader__") != "NdArrayNode" or node.get("type") != "numpy":
        raise _Unsupported("not a numpy array")
    array = np.load(io.BytesIO(archive.read(node["file"])), allow_pickle=False)
    if array.dtype != np.float64 or array.ndim != ndim or not np.isfinite(array).all():
        raise _Unsupported("not a finite float64 array of the expected shape")
    return array


def _scaler_arrays(archive: zipfile.ZipFile, node: dict) -> tuple[np.ndarray | None, np.ndarray | None]:
    attributes = _object_attributes(node)
    with_mean, with_std = _json_value(attributes["with_mean"]), _json_value(attributes["with_std"])
    if with_mean not in (True, False) or with_std not in (True, False):
        raise _Unsupported("with_mean/with_std")
    mean = _array(archive, attributes["mean_"], 1) if with_mean else None
    scale = _array(archive, attributes["scale_"], 1) if with_std else None
    return mean, scale


def _linear_arrays(archive: zipfile.ZipFile, node: dict) -> tuple[np.ndarray, float]:
    attributes = _object_attributes(node)
    coef = _array(archive, attributes["coef_"], 1)  # one target: coef_ is 1-D
    intercept_node = attributes["intercept_"]
    if intercept_node.get("__loader__") == "NdArrayNode":
        intercept = _array(archive, intercept_node, 0)[()]
    else:
        intercept = _json_value(intercept_node)  # fit_intercept=False stores the float 0.0
        if type(intercept) is not float:
            raise _Unsupported("intercept_")
    return coef, np.float64(intercept)
