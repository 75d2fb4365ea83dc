"""The scoring service behind ``score.py``: load the model once, validate each request, predict, answer."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import orjson

from amlops.core.settings import ScoringSettings
from amlops.scoring.linear import PYTHON_ROWS
from amlops.scoring.model import LoadedModel, load_model, model_identity
from amlops.scoring.requests import RequestError, read_rows, rows_to_matrix
from amlops.scoring.rules import Violation

#: From this many predictions on, :meth:`ScoringService.respond` returns serialised JSON: orjson writes
#: 1,000 floats in ~15 µs where the server's ``json.dumps`` takes ~250 µs.
SERIALIZE_FROM_ROWS = 16

#: What the inference server logs, at INFO, for every answer ``run()`` returns ready-made (a large batch's).
RESPONSE_NOTICE = "run() output is HTTP Response"


def drop_response_notices() -> None:
    """Keep :data:`RESPONSE_NOTICE` out of the server's log; its access line (``POST /score 200 ...``) stays.

    Written for every large-batch request, the notice says nothing the access line does not, doubles the log
    lines an endpoint ships, and costs the worker ~19 µs of CPU per request (``docs/performance.md``).
    """
    server_log = logging.getLogger("azmlinfsrv")
    if _not_a_response_notice not in server_log.filters:
        server_log.addFilter(_not_a_response_notice)


def _not_a_response_notice(record: logging.LogRecord) -> bool:
    return record.msg != RESPONSE_NOTICE


class ScoringService:
    """What ``score.py`` delegates to: one loaded model and the request limits."""

    def __init__(self, model: LoadedModel, limits: ScoringSettings | None = None):
        self.model = model
        self.limits = limits or ScoringSettings()
        self._identity = {"name": model.name, "version": model.version}
        self._classes = model.classes
        self._with_probabilities = (
            self._classes is not None and self.limits.probabilities and hasattr(model.estimator, "predict_proba")
        )
        # A regression refused or answered without flags: the answer is the predictions alone (the fast path).
        self._plain = self._classes is None and (model.rules is None or self.limits.out_of_range == "refuse")

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
        return _all_or_the_failing_row(self._finite_predictions, matrix)

    def _finite_predictions(self, matrix: np.ndarray) -> np.ndarray | None:
        labels = self._try_labels(matrix)
        if labels is None:
            return None
        predictions = np.asarray(labels, dtype=np.float64)
        return predictions if np.isfinite(predictions).all() else None

    def score(self, raw: str | bytes) -> np.ndarray | list[float]:
        """Predictions for a request body: a float64 array, or a list for a few rows predicted in plain Python.

        A classifier's are its labels; :meth:`answer` adds the probabilities and anything flagged.

        Raises:
            RequestError: for a malformed body (:func:`read_rows`), a value outside the contract's rules (unless
                they are flagged) or an overflow in the model.
        """
        return self._score(raw)[0]

    def _score(self, raw: str | bytes) -> tuple[np.ndarray | list, np.ndarray | list[list], list[Violation]]:
        """The predictions, the rows they were made from, and the values outside the rules (when flagged)."""
        rows = read_rows(raw, self.model.features, self.limits)
        rules = self.model.rules
        violations = []
        if rules is not None:
            violations = rules.check_rows(rows) if type(rows) is list else rules.check_matrix(rows)
            if violations and self.limits.out_of_range == "refuse":
                raise RequestError(400, f"{violations[0].message} (contract.yml; docs/endpoint.md)")
        if type(rows) is list:
            linear = self.model.linear
            if linear is not None and len(rows) <= PYTHON_ROWS:
                predictions = linear.predict_rows(rows)
                if predictions is not None:
                    return predictions, rows, violations
            rows = rows_to_matrix(rows, self.model.features)
        if self._classes is not None:
            return self._labels(rows), rows, violations
        return self.predict_array(rows), rows, violations

    def _labels(self, matrix: np.ndarray) -> np.ndarray:
        """A classifier's labels for a validated matrix; the first row its arithmetic overflows on is a 400."""
        return _all_or_the_failing_row(self._try_labels, matrix)

    def _try_labels(self, matrix: np.ndarray) -> np.ndarray | None:
        """The estimator's predictions, or ``None`` when its arithmetic overflowed on some row."""
        with np.errstate(over="ignore", invalid="ignore"):
            try:
                return self.model.estimator.predict(matrix)
            except ValueError as error:  # scikit-learn's check of a step's input, e.g. "Input X contains infinity"
                if "infinity" not in str(error) and "NaN" not in str(error):
                    raise
                return None

    def _probabilities(self, matrix: np.ndarray) -> list[dict]:
        """Each row's probability per class, keyed by the class label as text (JSON keys are text)."""
        with np.errstate(over="ignore", invalid="ignore"):
            try:
                probabilities = np.asarray(self.model.estimator.predict_proba(matrix), dtype=np.float64)
            except (ValueError, FloatingPointError, OverflowError) as error:
                raise RequestError(400, f"the model cannot score these rows: {error}") from None
        if not np.isfinite(probabilities).all():
            row = int(np.argmin(np.isfinite(probabilities).all(axis=1)))
            raise RequestError(400, f"row {row}: {_OVERFLOW}")
        keys = [str(label) for label in self._classes]
        return [dict(zip(keys, row, strict=True)) for row in probabilities.tolist()]

    def answer(self, raw: str | bytes) -> dict:
        """The 200 answer to a request body: predictions, probabilities (classifiers), flags, the model.

        Raises:
            RequestError: whatever :meth:`score` refuses.
        """
        predictions, rows, violations = self._score(raw)
        answer: dict = {"predictions": predictions if type(predictions) is list else predictions.tolist()}
        if self._classes is not None and self._with_probabilities:
            matrix = rows if isinstance(rows, np.ndarray) else rows_to_matrix(rows, self.model.features)
            answer["probabilities"] = self._probabilities(matrix)
        if self.model.rules is not None and self.limits.out_of_range == "flag":
            answer["out_of_range"] = [violation.as_dict() for violation in violations]
        answer["model"] = dict(self._identity)
        return answer

    def handle(self, raw: str | bytes) -> tuple[int, dict]:
        """Answer one request body with an HTTP status and a JSON-ready payload."""
        try:
            return 200, self.answer(raw)
        except RequestError as error:
            return error.status, {"message": error.message}

    def respond(self, raw: str | bytes) -> tuple[int, dict | bytes]:
        """:meth:`handle` for the server: an answer of :data:`SERIALIZE_FROM_ROWS` rows or more comes back as JSON.

        The same document either way; serialising it here is what makes large batches cheap, and for a few
        rows a dict is cheaper (the server makes a log record for a ready-made response: :data:`RESPONSE_NOTICE`).
        """
        if self._plain is False:
            return self.handle(raw)
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


def _all_or_the_failing_row(attempt: Callable[[np.ndarray], np.ndarray | None], matrix: np.ndarray) -> np.ndarray:
    """``attempt(matrix)``, or a 400 naming the first row it fails on (``None``: the model's arithmetic overflowed).

    Rows are predicted independently, so a bisection finds that row in a few more attempts.
    """
    answers = attempt(matrix)
    if answers is not None:
        return answers
    low, high = 0, len(matrix)
    while high - low > 1:
        middle = (low + high) // 2
        if attempt(matrix[low:middle]) is None:
            high = middle
        else:
            low = middle
    raise RequestError(400, f"row {low}: {_OVERFLOW}")
