"""Scoring requests shared by the in-process, endpoint, fast-path and benchmark checks.

Beside the standard library, only a contract is read here (YAML and pydantic, no pandas or scikit-learn):
``python -m bench`` imports this module at start-up, and builds the same bad requests for the root's model.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path

from amlops.core import contract
from tests.support.checkout import FIXTURE


def first_row(root: Path) -> tuple[tuple[str, ...], list[float]]:
    """A project's feature names, and the first row of its data snapshot in their order.

    Args:
        root: The project root (its ``contract.yml`` names the snapshot).

    Returns:
        The feature names and the row's values: numbers as the CSV writes them (``60`` an int, ``32.4`` a
        float), or strings.
    """
    project = contract.in_root(root)
    with (Path(root) / project.data).open(newline="") as handle:
        row = next(csv.DictReader(handle))
    values = [_number(row[name]) if column.type != "str" else row[name] for name, column in project.columns.items()]
    return project.feature_names, values[: len(project.feature_names)]


def _number(text: str) -> int | float:
    return int(text) if text.lstrip("-").isdigit() else float(text)


#: The request columns in the test project's order, and one valid row of its snapshot as a list of values.
COLUMNS, ROW = first_row(FIXTURE)
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


def raw_row(*values: str, row: list = ROW) -> str:
    """A body with one list row whose first values are written verbatim (JSON literals such as NaN)."""
    return '{"data": [[' + ", ".join([*values, *map(json.dumps, row[len(values) :])]) + "]]}"


def with_value(column: str, value: object, *, row: list = ROW, columns: tuple[str, ...] = COLUMNS) -> list:
    """``row`` with one column replaced."""
    changed = list(row)
    changed[columns.index(column)] = value
    return changed


def record_without(*columns: str, record: dict = RECORD) -> dict:
    """``record`` without some of its columns."""
    return {name: value for name, value in record.items() if name not in columns}


@dataclass(frozen=True)
class BadRequest:
    """A request the service must refuse with ``status`` and a message containing every fragment."""

    id: str
    body: str | bytes
    fragments: tuple[str, ...]
    status: int = 400
    #: Well-formed and finite, so ``parse_rows`` accepts it: the model's arithmetic is what overflows.
    overflows_in_model: bool = False


def bad_requests(columns: tuple[str, ...] = COLUMNS, row: list = ROW) -> list[BadRequest]:
    """Requests that a model taking ``columns`` refuses under the default limits.

    Args:
        columns: The model's features, in order; at least five, the second one scaled by less than one.
        row: A valid row of values for them.

    Returns:
        The requests: malformed JSON, wrong shapes, wrong value types, non-finite and overflowing values.
    """
    record = dict(zip(columns, row, strict=True))
    first, second, third, fourth, fifth = columns[:5]
    width = len(columns)

    def value(column: str, new: object) -> list:
        return with_value(column, new, row=row, columns=columns)

    def raw(*values: str) -> str:
        return raw_row(*values, row=row)

    return [
        BadRequest("malformed-json", '{"data": [[1, 2,]]}', ("not valid json",)),
        BadRequest("truncated-json", body([row])[:-7], ("not valid json",)),
        BadRequest("empty-body", "", ("not valid json",)),
        BadRequest("body-is-list", json.dumps([row]), ('json object with a "data" field',)),
        BadRequest("body-is-string", '"59, 2, 32.1"', ('json object with a "data" field',)),
        BadRequest("body-is-number", "42", ('json object with a "data" field',)),
        BadRequest("body-is-null", "null", ('json object with a "data" field',)),
        BadRequest("no-data-field", json.dumps({"rows": [row]}), ('"data" field',)),
        BadRequest(
            "unknown-top-level-field", json.dumps({"data": [row], "model": "x"}), ("unknown top-level", "'model'")
        ),
        BadRequest("data-is-object", json.dumps({"data": record}), ('"data" must be a list', "an object")),
        BadRequest("data-is-string", json.dumps({"data": "59,2"}), ('"data" must be a list', "a string")),
        BadRequest("data-is-null", json.dumps({"data": None}), ('"data" must be a list', "null")),
        BadRequest("empty-batch", body([]), ("empty batch",)),
        BadRequest("too-few-columns", body([[1.0, 2.0]]), ("row 0", f"expected {width} values", "got 2")),
        BadRequest(
            "too-many-columns", body([row, [*row, 1]]), ("row 1", f"expected {width} values", f"got {width + 1}")
        ),
        BadRequest("empty-row", body([row, row, []]), ("row 2", "got 0")),
        BadRequest("row-is-string", body([row, "59,2,32.1"]), ("row 1", "got a string")),
        BadRequest("row-is-number", body([59, 2]), ("row 0", "got a number")),
        BadRequest("row-is-null", body([row, None]), ("row 1", "got null")),
        BadRequest("list-then-record", body([row, record]), ("row 1", "row 0 is a list")),
        BadRequest("record-then-list", body([record, row]), ("row 1", "expected an object", "got a list")),
        BadRequest(
            "missing-column",
            body([record, record_without(columns[-1], record=record)]),
            ("row 1", "missing column", f"'{columns[-1]}'"),
        ),
        BadRequest("empty-record", body([{}]), ("row 0", "missing column", f"'{first}'")),
        BadRequest("unknown-column", body([record | {third + "2": 30}]), ("row 0", "unknown column", f"'{third}2'")),
        BadRequest(
            "renamed-column",
            body([record_without(third, record=record) | {third.upper(): 32.1}]),
            ("row 0", f"missing column(s) ['{third}']", f"unknown column(s) ['{third.upper()}']"),
        ),
        BadRequest("string-value", body([value(first, "59")]), (f"row 0, column '{first}'", "got a string")),
        BadRequest("null-value", body([row, value(fourth, None)]), (f"row 1, column '{fourth}'", "got null")),
        BadRequest("true-value", body([value(second, True)]), (f"row 0, column '{second}'", "got a boolean")),
        BadRequest("false-value", body([value(second, False)]), (f"row 0, column '{second}'", "got a boolean")),
        BadRequest("true-in-record", body([record | {second: True}]), (f"row 0, column '{second}'", "got a boolean")),
        BadRequest("null-in-record", body([record | {fifth: None}]), (f"row 0, column '{fifth}'", "got null")),
        BadRequest("nested-list-value", body([value(third, [32.1])]), (f"row 0, column '{third}'", "got a list")),
        BadRequest(
            "nested-object-value", body([value(fourth, {"v": 1})]), (f"row 0, column '{fourth}'", "got an object")
        ),
        BadRequest("nested-in-record", body([record | {fifth: [157]}]), (f"row 0, column '{fifth}'", "got a list")),
        BadRequest("nan", raw("59", "2", "NaN"), (f"row 0, column '{third}'", "not finite")),
        BadRequest("infinity", raw("Infinity"), (f"row 0, column '{first}'", "not finite")),
        BadRequest("minus-infinity", raw("59", "-Infinity"), (f"row 0, column '{second}'", "not finite")),
        BadRequest(
            "nan-in-record",
            body([record | {first: 0.5}]).replace(f'"{first}": 0.5', f'"{first}": NaN'),
            (f"row 0, column '{first}'", "not finite"),
        ),
        BadRequest("float-overflow-1e400", raw("1e400"), (f"row 0, column '{first}'", "not finite")),
        BadRequest("huge-integer", raw(str(10**400)), ("too large",)),
        BadRequest("integer-beyond-digit-limit", raw("9" * 5000), ("4300 digits",)),
        # Finite inputs whose scaled values or prediction overflow inside the model.
        # (scikit-learn refuses the infinite scaled value / the prediction itself is infinite).
        BadRequest(
            "scaled-value-overflows",
            body([row, value(second, 1.7e308)]),
            ("row 1", second),  # outside the contract's categories; a model without rules overflows (test_scoring)
            overflows_in_model=True,
        ),
        BadRequest(
            "prediction-overflows",
            body([row, row, [1.7e308, row[1], *[1.7e308] * (width - 2)]]),
            ("row 2", first),  # outside the contract's range; a model without rules overflows (test_scoring)
            overflows_in_model=True,
        ),
        BadRequest("deeply-nested-list", "[" * 100_000, ("not valid json",)),
        BadRequest("deeply-nested-data", '{"data": ' + "[" * 100_000 + "]" * 100_000 + "}", ("not valid json",)),
        BadRequest("deeply-nested-object", '{"a": ' * 100_000, ("not valid json",)),
        BadRequest("not-utf8", b'{"data": [[59, 2, 32.1, \xff\xfe]]}', ("utf-8",)),
        BadRequest("latin1-string", '{"data": [["\u00c4"]]}'.encode("latin-1"), ("utf-8",)),
    ]


#: Requests that the test project's model refuses (also sent to the real server by ``tests/test_endpoint.py``).
BAD_REQUESTS = bad_requests()
