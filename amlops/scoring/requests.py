"""Request bodies: read ``{"data": [...]}`` into a float matrix, or refuse it with the status and a message.

A list-of-lists body whose bytes are, apart from digits and whitespace, exactly ``{"data":[[,,…],…]}`` is parsed
by simdjson straight into a float64 buffer; any other body goes through :func:`json.loads` and the checks that
write the error messages.
"""

from __future__ import annotations

import json
import threading
from typing import Any

import numpy as np
import simdjson

from amlops.core.errors import BadInputError
from amlops.core.settings import ScoringSettings

_NUMBER_TYPES = frozenset({int, float})


#: Bytes a list-of-lists body may hold besides its structure: JSON number characters and whitespace.
_NUMBER_AND_SPACE_BYTES = b"0123456789.eE+- \t\n\r"


_LIST_BODY_PREFIX = b'{"data":['


_LIST_BODY_SUFFIX = b"]}"


#: Bodies from this size on try the simdjson path; smaller ones are cheaper through :func:`json.loads`,
#: whose code the server keeps hot.
SIMDJSON_FROM_BYTES = 1024


class RequestError(BadInputError, ValueError):
    """A request the service refuses; ``status`` is the HTTP status to answer with."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


def parse_rows(raw: str | bytes, features: tuple[str, ...], limits: ScoringSettings) -> np.ndarray:
    """Turn a request body into a float matrix with columns in ``features`` order.

    Raises:
        RequestError: 413 for an oversize body, 400 naming the problem for anything else malformed.
    """
    rows = read_rows(raw, features, limits)
    return rows if isinstance(rows, np.ndarray) else rows_to_matrix(rows, features)


def read_rows(raw: str | bytes, features: tuple[str, ...], limits: ScoringSettings) -> np.ndarray | list[list]:
    """The rows of a request body: a float matrix, or checked rows of Python numbers in ``features`` order.

    A large list-of-lists body comes back as a matrix (:func:`_list_body_matrix`); any other acceptable body
    as a list of rows whose values are all ``int`` or ``float``, which :func:`rows_to_matrix` turns into a
    matrix (or refuses, for a value that is not finite or too large for a float).

    Raises:
        RequestError: 413 for an oversize body, 400 naming the problem for anything else malformed.
    """
    size = len(raw)
    encoded = raw
    if type(raw) is str and size <= limits.max_request_bytes and not raw.isascii():
        encoded = raw.encode("utf-8", "surrogatepass")  # the limit is in bytes; the server passes a str
        size = len(encoded)
    if size > limits.max_request_bytes:
        raise RequestError(413, f"request body of {size} bytes exceeds the limit of {limits.max_request_bytes} bytes")
    if size >= SIMDJSON_FROM_BYTES:
        if type(encoded) is str:
            encoded = encoded.encode("ascii")
        matrix = _list_body_matrix(encoded, len(features), limits.max_batch_rows)
        if matrix is not None:
            return matrix
    try:
        body = json.loads(raw)
    except (ValueError, RecursionError) as error:
        raise RequestError(400, f"request body is not valid JSON: {error}") from None
    if type(body) is not dict or "data" not in body:
        raise RequestError(400, 'request body must be a JSON object with a "data" field')
    if len(body) > 1:
        raise RequestError(400, f'unknown top-level field(s) {sorted(set(body) - {"data"})}; only "data" is accepted')
    rows = body["data"]
    if not isinstance(rows, list):
        raise RequestError(400, f'"data" must be a list of rows, got {_json_type(rows)}')
    if not rows:
        raise RequestError(400, '"data" is an empty batch; send at least one row')
    if len(rows) > limits.max_batch_rows:
        raise RequestError(400, f"batch of {len(rows)} rows exceeds the maximum of {limits.max_batch_rows} rows")
    if isinstance(rows[0], dict):
        return _records_to_rows(rows, features)
    _check_list_rows(rows, features)
    return rows


def rows_to_matrix(rows: list[list], features: tuple[str, ...]) -> np.ndarray:
    """A float64 matrix of rows checked by :func:`read_rows`.

    Raises:
        RequestError: 400 naming the first value that is not finite, or an integer too large for a float.
    """
    try:
        matrix = np.array(rows, dtype=np.float64)
    except OverflowError:
        raise RequestError(400, "a number is too large to represent as a 64-bit float") from None
    if not np.isfinite(matrix).all():
        row, column = (int(i) for i in np.argwhere(~np.isfinite(matrix))[0])
        raise RequestError(
            400, f"row {row}, column {features[column]!r}: value is not finite (NaN, Infinity or overflow)"
        )
    return matrix


# One simdjson parser for the worker's threads, one body at a time (it holds the GIL while it parses anyway): it
# keeps its buffers, sized for the largest body seen, warm in the cache, and once, not once per thread (a parser
# per thread held ~11 MB more after 32 concurrent clients of 1,000-row batches).
_parser = simdjson.Parser()
_parser_lock = threading.Lock()


_row_shapes: dict[int, bytes] = {}


def _list_body_matrix(body: str | bytes, width: int, max_rows: int) -> np.ndarray | None:
    """The fast path of :func:`parse_rows`: the matrix of a well-formed list-of-lists body, else ``None``.

    It accepts a body only when its bytes, less digits, signs, dots, exponents and whitespace, are exactly
    ``{"data":[`` + ``[`` + ``,`` × (width - 1) + ``]`` repeated 1 to ``max_rows`` times, comma separated
    + ``]}``, and simdjson (strict RFC 8259, UTF-8 checked) parses it with every value a number that fits a
    float64. Such a body is ASCII, has no string but the key, no literal, no nesting and no ragged row, so
    :func:`json.loads` reads the same numbers from it, correctly rounded in both. Everything else (records,
    ``NaN``, integers beyond 64 bits, every malformed body) gets ``None`` and the general path's messages.
    """
    if not isinstance(body, bytes):
        return None
    shape = body.translate(None, _NUMBER_AND_SPACE_BYTES)
    row = _row_shapes.get(width)
    if row is None:
        row = _row_shapes[width] = b"[" + b"," * (width - 1) + b"],"
    rows, remainder = divmod(len(shape) - len(_LIST_BODY_PREFIX) - len(_LIST_BODY_SUFFIX) + 1, len(row))
    if remainder or not 1 <= rows <= max_rows:
        return None
    if shape != _LIST_BODY_PREFIX + (row * rows)[:-1] + _LIST_BODY_SUFFIX:
        return None
    with _parser_lock:
        try:
            document = _parser.parse(body)
            try:
                flat = document["data"].as_buffer(of_type="d")
            finally:
                del document  # the parser refuses to parse again while a document is alive
        except (ValueError, TypeError, KeyError, RuntimeError):  # malformed, a literal, a key not "data", big int
            return None
    matrix = np.frombuffer(flat, dtype=np.float64)
    if matrix.size != rows * width or not np.isfinite(matrix).all():
        return None
    return matrix.reshape(rows, width)


def _json_type(value: Any) -> str:
    names = {dict: "an object", list: "a list", str: "a string", bool: "a boolean", type(None): "null"}
    return names.get(type(value), "a number")


def _check_values(values: list, row: int, features: tuple[str, ...]) -> None:
    if not _NUMBER_TYPES.issuperset(map(type, values)):
        for column, value in zip(features, values, strict=False):
            if type(value) not in _NUMBER_TYPES:
                raise RequestError(400, f"row {row}, column {column!r}: expected a number, got {_json_type(value)}")


def _check_list_rows(rows: list, features: tuple[str, ...]) -> None:
    width = len(features)
    for index, row in enumerate(rows):
        if isinstance(row, dict):
            raise RequestError(400, f"row {index}: is an object but row 0 is a list; send all rows in one form")
        if not isinstance(row, list):
            raise RequestError(
                400,
                f"row {index}: expected a list of {width} numbers or an object keyed by column name, "
                f"got {_json_type(row)}",
            )
        if len(row) != width:
            raise RequestError(400, f"row {index}: expected {width} values ({', '.join(features)}), got {len(row)}")
        _check_values(row, index, features)


def _records_to_rows(records: list, features: tuple[str, ...]) -> list[list]:
    expected = set(features)
    rows = []
    for index, record in enumerate(records):
        if not isinstance(record, dict):
            raise RequestError(400, f"row {index}: expected an object keyed by column name, got {_json_type(record)}")
        if record.keys() != expected:
            missing = sorted(expected - record.keys())
            unknown = sorted(set(record) - expected)
            problems = ([f"missing column(s) {missing}"] if missing else []) + (
                [f"unknown column(s) {unknown}"] if unknown else []
            )
            raise RequestError(400, f"row {index}: {' and '.join(problems)}")
        row = [record[name] for name in features]
        _check_values(row, index, features)
        rows.append(row)
    return rows


def request_body(request: Any) -> bytes:
    """The body of a Flask request, as the bytes that arrived.

    Under gunicorn (the inference server's HTTP layer, locally and in Azure ML's containers) the whole
    ``Content-Length`` is read in one call of gunicorn's length reader: ``request.get_data()`` goes through
    gunicorn's ``Body.read``, which pulls 1 KB at a time and copies what it has buffered on every pull
    (~120 µs for a 64 KB body, as much as the rest of the server's own work). Any other server, a chunked
    body, or a body something has already started to read is read with ``request.get_data()``.
    """
    stream = request.environ.get("wsgi.input")
    reader = getattr(stream, "reader", None)
    length = request.content_length
    if (
        length
        and type(stream).__module__ == "gunicorn.http.body"
        and type(stream).__name__ == "Body"
        and type(reader).__name__ == "LengthReader"
        and reader.length == length
        and not stream.buf.tell()
    ):
        return reader.read(length)
    return request.get_data()
