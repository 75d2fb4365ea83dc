"""The scoring service behind ``score.py``: load the model once, validate each request, predict, answer."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import orjson

from amlops.core.settings import ScoringSettings
from amlops.scoring.linear import PYTHON_ROWS
from amlops.scoring.model import LoadedModel, load_model, model_identity
from amlops.scoring.requests import RequestError, read_rows, rows_to_matrix

#: From this many predictions on, :meth:`ScoringService.respond` returns serialised JSON: orjson writes
#: 1,000 floats in ~15 µs where the server's ``json.dumps`` takes ~250 µs.
SERIALIZE_FROM_ROWS = 16


class ScoringService:
    """What ``score.py`` delegates to: one loaded model and the request limits."""

    def __init__(self, model: LoadedModel, limits: ScoringSettings | None = None):
        self.model = model
        self.limits = limits or ScoringSettings()
        self._identity = {"name": model.name, "version": model.version}

    @classmethod
    def from_environment(cls) -> ScoringService:
        """Load the model from ``$AZUREML_MODEL_DIR``, as Azure ML mounts it."""
        model_dir = os.environ.get("AZUREML_MODEL_DIR")
        if not model_dir:
            raise RuntimeError("AZUREML_MODEL_DIR is not set: the server must mount a model")
        name, version = model_identity(Path(model_dir))
        return cls(load_model(Path(model_dir), name, version))

    def predict(self, matrix: np.ndarray) -> list[float]:
        """Predictions for a validated float matrix.

        Raises:
            RequestError: 400 naming the first row whose values are finite but so large that the model's
                arithmetic overflows (an infinite prediction, or an infinite intermediate scikit-learn refuses).
        """
        return self.predict_array(matrix).tolist()

    def predict_array(self, matrix: np.ndarray) -> np.ndarray:
        """:meth:`predict` as a float64 array."""
        linear = self.model.linear
        if linear is None:
            return self._estimator_predictions(matrix)
        with np.errstate(over="ignore", invalid="ignore"):  # ~1 µs; overflow is reported below
            predictions = linear.predict(matrix)
        if np.isfinite(predictions).all():
            return predictions
        # An infinite intermediate (the scaled value scikit-learn refuses) always makes the prediction inf or
        # NaN, so the first non-finite prediction is the first row scikit-learn's pipeline would refuse.
        raise RequestError(400, f"row {int(np.argmin(np.isfinite(predictions)))}: {_OVERFLOW}")

    def _estimator_predictions(self, matrix: np.ndarray) -> np.ndarray:
        predictions = self._finite_predictions(matrix)
        if predictions is not None:
            return predictions
        low, high = 0, len(matrix)  # rows are predicted independently: bisect to the first one that overflows
        while high - low > 1:
            middle = (low + high) // 2
            if self._finite_predictions(matrix[low:middle]) is None:
                high = middle
            else:
                low = middle
        raise RequestError(400, f"row {low}: {_OVERFLOW}")

    def _finite_predictions(self, matrix: np.ndarray) -> np.ndarray | None:
        with np.errstate(over="ignore", invalid="ignore"):
            try:
                predictions = np.asarray(self.model.estimator.predict(matrix), dtype=np.float64)
            except ValueError as error:  # scikit-learn's check of a step's input, e.g. "Input X contains infinity"
                if "infinity" not in str(error) and "NaN" not in str(error):
                    raise
                return None
        return predictions if np.isfinite(predictions).all() else None

    def score(self, raw: str | bytes) -> np.ndarray | list[float]:
        """Predictions for a request body: a float64 array, or a list for a few rows predicted in plain Python.

        Raises:
            RequestError: for a malformed body (:func:`read_rows`) or an overflow in the model.
        """
        rows = read_rows(raw, self.model.features, self.limits)
        if type(rows) is list:
            linear = self.model.linear
            if linear is not None and len(rows) <= PYTHON_ROWS:
                predictions = linear.predict_rows(rows)
                if predictions is not None:
                    return predictions
            rows = rows_to_matrix(rows, self.model.features)
        return self.predict_array(rows)

    def handle(self, raw: str | bytes) -> tuple[int, dict]:
        """Answer one request body with an HTTP status and a JSON-ready payload."""
        try:
            predictions = self.score(raw)
        except RequestError as error:
            return error.status, {"message": error.message}
        if type(predictions) is not list:
            predictions = predictions.tolist()
        return 200, {"predictions": predictions, "model": dict(self._identity)}

    def respond(self, raw: str | bytes) -> tuple[int, dict | bytes]:
        """:meth:`handle` for the server: an answer of :data:`SERIALIZE_FROM_ROWS` rows or more comes back as JSON.

        The same document either way; serialising it here is what makes large batches cheap, and for a few
        rows a dict is cheaper (the server logs an extra line for a ready-made response).
        """
        try:
            predictions = self.score(raw)
        except RequestError as error:
            return error.status, {"message": error.message}
        if len(predictions) < SERIALIZE_FROM_ROWS:
            if type(predictions) is not list:
                predictions = predictions.tolist()
            return 200, {"predictions": predictions, "model": dict(self._identity)}
        return 200, orjson.dumps(
            {"predictions": np.ascontiguousarray(predictions), "model": self._identity},
            option=orjson.OPT_SERIALIZE_NUMPY,
        )


_OVERFLOW = "values are too large for the model (its arithmetic overflows)"
