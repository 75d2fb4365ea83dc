"""The contract's column rules as the endpoint applies them: allowed categories, ranges and whole numbers, per column.

Training writes them into the MLflow model folder (``contract.json``, from ``contract.yml``), so a model is
served under the rules it was trained under. A value outside them gets HTTP 400 naming the row and the
column, or, with ``AMLOPS_SCORING_OUT_OF_RANGE=flag``, an answer that lists it under ``out_of_range``
(``docs/endpoint.md``). NumPy only: this runs on every request.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

#: The file in an MLflow model folder that holds the contract the model was trained under.
MODEL_CONTRACT_FILE = "contract.json"


@dataclass(frozen=True)
class Violation:
    """One value outside its column's rule."""

    row: int
    column: str
    value: float
    rule: str

    @property
    def message(self) -> str:
        """``row 3, column 'x': 7.0 is not one of the categories [1, 2]``."""
        return f"row {self.row}, column {self.column!r}: {self.value:g} {self.rule}"

    def as_dict(self) -> dict:
        """The violation as JSON for a flagged answer."""
        return {"row": self.row, "column": self.column, "value": self.value, "rule": self.rule}


class Rules:
    """The ranges and categories of the feature columns, and which take whole numbers only, in model order."""

    def __init__(self, features: list[dict], classes: list | None = None):
        #: A classifier's class labels as training recorded them (``None`` for a regression).
        self.classes = classes
        self.names = tuple(column["name"] for column in features)
        ranges = [column.get("range") or (-np.inf, np.inf) for column in features]
        self.low = np.array([low for low, _ in ranges], dtype=np.float64)
        self.high = np.array([high for _, high in ranges], dtype=np.float64)
        self.categories = {
            index: np.array(column["categories"], dtype=np.float64)
            for index, column in enumerate(features)
            if column.get("categories")
        }
        #: The ``int`` columns: a fraction there is refused, as training refuses it.
        self.whole = [index for index, column in enumerate(features) if column.get("type") == "int"]
        # Per constrained column, in plain Python for the few-row path: (index, low, high, allowed values or None,
        # whole numbers only).
        self._plain = [
            (
                index,
                float(self.low[index]),
                float(self.high[index]),
                set(column.get("categories") or ()) or None,
                index in self.whole,
            )
            for index, column in enumerate(features)
            if column.get("range") or column.get("categories") or index in self.whole
        ]
        # The bounds repeated row after row, for one contiguous comparison of a whole batch (grown on demand).
        self._tiled_bounds: tuple[np.ndarray, np.ndarray] = (self.low[:0], self.high[:0])

    @classmethod
    def read(cls, folder: Path) -> Rules | None:
        """The rules saved in a model folder, or ``None`` for a model saved without them."""
        path = Path(folder) / MODEL_CONTRACT_FILE
        if not path.is_file():
            return None
        recorded = json.loads(path.read_text(encoding="utf-8"))
        return cls(recorded["features"], recorded.get("classes"))

    def _rule(self, index: int, value: float) -> str | None:
        try:
            if not math.isfinite(value):  # not a value at all: the request checks name it as such
                return None
        except OverflowError:  # an integer beyond any float: the request checks name it as such
            return None
        if index in self.whole and value % 1:
            return "is not a whole number (an int column of the training data's contract)"
        if index in self.categories and value not in self.categories[index]:
            shown = ", ".join(f"{c:g}" for c in self.categories[index])
            return f"is not one of the categories [{shown}]"
        if not self.low[index] <= value <= self.high[index]:
            return f"is outside the range [{self.low[index]:g}, {self.high[index]:g}] of the training data's contract"
        return None

    def check_matrix(self, matrix: np.ndarray) -> list[Violation]:
        """Every value of a float matrix outside its column's rule, row by row (empty when all are inside).

        The bounds are compared in one contiguous pass over the whole batch (~10 µs for 1,000 rows of 10 columns,
        where comparing row by row with the per-column bounds took ~19 µs).
        """
        low, high = self._bounds(matrix.size)
        flat = matrix.reshape(-1)
        bad = ((flat < low) | (flat > high)).reshape(matrix.shape)
        for index, allowed in self.categories.items():
            bad[:, index] |= ~np.isin(matrix[:, index], allowed)
        if self.whole:  # (errstate costs a microsecond: only where there is an int column)
            with np.errstate(invalid="ignore"):  # inf has no remainder: not a value, named by the request checks
                for index in self.whole:
                    bad[:, index] |= np.mod(matrix[:, index], 1) != 0
        if not bad.any():  # the common case
            return []
        bad &= np.isfinite(matrix)  # not a value at all: the request checks name it as such
        if not bad.any():
            return []
        return [
            Violation(int(row), self.names[column], float(matrix[row, column]), self._rule(column, matrix[row, column]))
            for row, column in np.argwhere(bad)
        ]

    def _bounds(self, size: int) -> tuple[np.ndarray, np.ndarray]:
        """The low and high bounds repeated row after row, ``size`` values each (tiled once, grown on demand)."""
        low, high = self._tiled_bounds
        if len(low) < size:
            rows = size // len(self.low)
            low, high = self._tiled_bounds = (np.tile(self.low, rows), np.tile(self.high, rows))
        return low[:size], high[:size]

    def check_rows(self, rows: list[list]) -> list[Violation]:
        """:meth:`check_matrix` for a few rows of Python numbers (cheaper than building a matrix)."""
        found = []
        for row_index, row in enumerate(rows):
            for index, low, high, allowed, whole in self._plain:
                value = row[index]
                if (allowed is None or value in allowed) and low <= value <= high and not (whole and value % 1):
                    continue
                rule = self._rule(index, value)
                if rule is not None:
                    found.append(Violation(row_index, self.names[index], float(value), rule))
        return found
