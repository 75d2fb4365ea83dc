"""Scoring requests shared by the in-process, endpoint, fast-path and benchmark checks.

Beside the standard library, only the example's contract is read here (YAML and pydantic, no pandas or
scikit-learn): ``python -m bench`` imports this module at start-up.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from tests.support.example import FEATURES

#: The request columns in the model's order: the example contract's features.
COLUMNS: tuple[str, ...] = FEATURES
#: One valid row of the committed data snapshot, as a list of values.
ROW = [59, 2, 32.1, 101, 157, 93.2, 38, 4, 4.8598, 87]
#: ``ROW`` as a record (column name to value).
RECORD = dict(zip(COLUMNS, ROW, strict=True))


def body(rows: list) -> str:
    """A JSON request body.

    Args:
        rows: The rows (lists or records) to send as ``data``.

    Returns:
        The body, as a string.
    """
    return json.dumps({"data": rows})


def raw_row(*values: str) -> str:
    """A body with one list row whose first values are written verbatim (JSON literals such as NaN)."""
    return '{"data": [[' + ", ".join([*values, *map(str, ROW[len(values) :])]) + "]]}"


def with_value(column: str, value: object) -> list:
    """``ROW`` with one column replaced."""
    row = list(ROW)
    row[COLUMNS.index(column)] = value
    return row


def record_without(*columns: str) -> dict:
    """``RECORD`` without some of its columns."""
    return {name: value for name, value in RECORD.items() if name not in columns}


@dataclass(frozen=True)
class BadRequest:
    """A request the service must refuse with ``status`` and a message containing every fragment."""

    id: str
    body: str | bytes
    fragments: tuple[str, ...]
    status: int = 400
    #: Well-formed and finite, so ``parse_rows`` accepts it: the model's arithmetic is what overflows.
    overflows_in_model: bool = False


#: Requests that are refused under the default limits (also sent to the real server by ``tests/test_endpoint.py``
#: and by the benchmark).
BAD_REQUESTS = [
    BadRequest("malformed-json", '{"data": [[1, 2,]]}', ("not valid json",)),
    BadRequest("truncated-json", body([ROW])[:-7], ("not valid json",)),
    BadRequest("empty-body", "", ("not valid json",)),
    BadRequest("body-is-list", json.dumps([ROW]), ('json object with a "data" field',)),
    BadRequest("body-is-string", '"59, 2, 32.1"', ('json object with a "data" field',)),
    BadRequest("body-is-number", "42", ('json object with a "data" field',)),
    BadRequest("body-is-null", "null", ('json object with a "data" field',)),
    BadRequest("no-data-field", json.dumps({"rows": [ROW]}), ('"data" field',)),
    BadRequest("unknown-top-level-field", json.dumps({"data": [ROW], "model": "x"}), ("unknown top-level", "'model'")),
    BadRequest("data-is-object", json.dumps({"data": RECORD}), ('"data" must be a list', "an object")),
    BadRequest("data-is-string", json.dumps({"data": "59,2"}), ('"data" must be a list', "a string")),
    BadRequest("data-is-null", json.dumps({"data": None}), ('"data" must be a list', "null")),
    BadRequest("empty-batch", body([]), ("empty batch",)),
    BadRequest("too-few-columns", body([[1.0, 2.0]]), ("row 0", "expected 10 values", "got 2")),
    BadRequest("too-many-columns", body([ROW, [*ROW, 1]]), ("row 1", "expected 10 values", "got 11")),
    BadRequest("empty-row", body([ROW, ROW, []]), ("row 2", "got 0")),
    BadRequest("row-is-string", body([ROW, "59,2,32.1"]), ("row 1", "got a string")),
    BadRequest("row-is-number", body([59, 2]), ("row 0", "got a number")),
    BadRequest("row-is-null", body([ROW, None]), ("row 1", "got null")),
    BadRequest("list-then-record", body([ROW, RECORD]), ("row 1", "row 0 is a list")),
    BadRequest("record-then-list", body([RECORD, ROW]), ("row 1", "expected an object", "got a list")),
    BadRequest("missing-column", body([RECORD, record_without("s6")]), ("row 1", "missing column", "'s6'")),
    BadRequest("empty-record", body([{}]), ("row 0", "missing column", "'age'")),
    BadRequest("unknown-column", body([RECORD | {"bmi2": 30}]), ("row 0", "unknown column", "'bmi2'")),
    BadRequest(
        "renamed-column",
        body([record_without("bmi") | {"BMI": 32.1}]),
        ("row 0", "missing column(s) ['bmi']", "unknown column(s) ['BMI']"),
    ),
    BadRequest("string-value", body([with_value("age", "59")]), ("row 0, column 'age'", "got a string")),
    BadRequest("null-value", body([ROW, with_value("s3", None)]), ("row 1, column 's3'", "got null")),
    BadRequest("true-value", body([with_value("sex", True)]), ("row 0, column 'sex'", "got a boolean")),
    BadRequest("false-value", body([with_value("sex", False)]), ("row 0, column 'sex'", "got a boolean")),
    BadRequest("true-in-record", body([RECORD | {"sex": True}]), ("row 0, column 'sex'", "got a boolean")),
    BadRequest("null-in-record", body([RECORD | {"s5": None}]), ("row 0, column 's5'", "got null")),
    BadRequest("nested-list-value", body([with_value("bmi", [32.1])]), ("row 0, column 'bmi'", "got a list")),
    BadRequest("nested-object-value", body([with_value("bp", {"v": 1})]), ("row 0, column 'bp'", "got an object")),
    BadRequest("nested-in-record", body([RECORD | {"s1": [157]}]), ("row 0, column 's1'", "got a list")),
    BadRequest("nan", raw_row("59", "2", "NaN"), ("row 0, column 'bmi'", "not finite")),
    BadRequest("infinity", raw_row("Infinity"), ("row 0, column 'age'", "not finite")),
    BadRequest("minus-infinity", raw_row("59", "-Infinity"), ("row 0, column 'sex'", "not finite")),
    BadRequest(
        "nan-in-record", body([RECORD]).replace('"age": 59', '"age": NaN'), ("row 0, column 'age'", "not finite")
    ),
    BadRequest("float-overflow-1e400", raw_row("1e400"), ("row 0, column 'age'", "not finite")),
    BadRequest("huge-integer", raw_row(str(10**400)), ("too large",)),
    BadRequest("integer-beyond-digit-limit", raw_row("9" * 5000), ("4300 digits",)),
    # Finite inputs whose scaled values or prediction overflow inside the model.
    # (scikit-learn refuses the infinite scaled value / the prediction itself is infinite).
    BadRequest(
        "scaled-value-overflows",
        body([ROW, with_value("sex", 1.7e308)]),
        ("row 1", "sex"),  # outside the contract's categories; a model without rules overflows (test_scoring)
        overflows_in_model=True,
    ),
    BadRequest(
        "prediction-overflows",
        body([ROW, ROW, [1.7e308, 2] + [1.7e308] * 3 + ROW[5:]]),
        ("row 2", "age"),  # outside the contract's range; a model without rules overflows (test_scoring)
        overflows_in_model=True,
    ),
    BadRequest("deeply-nested-list", "[" * 100_000, ("not valid json",)),
    BadRequest("deeply-nested-data", '{"data": ' + "[" * 100_000 + "]" * 100_000 + "}", ("not valid json",)),
    BadRequest("deeply-nested-object", '{"a": ' * 100_000, ("not valid json",)),
    BadRequest("not-utf8", b'{"data": [[59, 2, 32.1, \xff\xfe]]}', ("utf-8",)),
    BadRequest("latin1-string", '{"data": [["Ä"]]}'.encode("latin-1"), ("utf-8",)),
]
