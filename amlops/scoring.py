"""The scoring contract behind ``score.py``: load the model once, validate requests, predict.

Kept free of MLflow, pandas and (for the project's own model) scikit-learn, so that a serving worker
starts fast and stays small: the model is read straight from the MLflow model folder (its ``MLmodel``
file names the skops file and the signature).

Request bodies (``DESIGN.md`` §5)::

    {"data": [[59, 2, 32.1, 101, 157, 93.2, 38, 4, 4.8598, 87], ...]}
    {"data": [{"age": 59, "sex": 2, "bmi": 32.1, ...}, ...]}

Response: ``{"predictions": [...], "model": {"name": ..., "version": ...}}``. Every malformed request is
answered with a 4xx status and ``{"message": ...}`` naming the problem.

Speed (``docs/performance.md``) comes from three fast paths, each of which either gives exactly what
the general path would or steps aside to it:

* **Parsing.** A list-of-lists body whose bytes are, apart from digits and whitespace, exactly
  ``{"data":[[,,…],…]}`` is parsed by simdjson straight into a float64 buffer. Any other body (records,
  anything malformed) goes through :func:`json.loads` and the checks that write the error messages.
* **Predicting.** A skops file holding ``StandardScaler`` steps and a ``Ridge`` or ``LinearRegression``
  is read without scikit-learn (:func:`read_linear_pipeline`): the same arithmetic on the same fitted
  arrays, so the same predictions, without ~1 s of imports and ~100 MB per worker. Any other model is
  loaded by skops and scikit-learn.
* **Answering.** Large answers are serialised by orjson (:meth:`ScoringService.respond`).
"""

from __future__ import annotations

import io
import json
import os
import threading
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import simdjson
import yaml

from amlops.core.settings import ScoringSettings

_NUMBER_TYPES = frozenset({int, float})
_TRUSTED_MODULE_PREFIXES = ("sklearn.", "numpy.", "scipy.")
#: Bytes a list-of-lists body may hold besides its structure: JSON number characters and whitespace.
_NUMBER_AND_SPACE_BYTES = b"0123456789.eE+- \t\n\r"
_LIST_BODY_PREFIX = b'{"data":['
_LIST_BODY_SUFFIX = b"]}"
#: Bodies from this size on try the simdjson path; smaller ones are cheaper through :func:`json.loads`,
#: whose code the server keeps hot.
SIMDJSON_FROM_BYTES = 1024
#: Batches of up to this many rows are predicted in plain Python (:meth:`LinearPipeline.predict_rows`).
PYTHON_ROWS = 8
#: From this many rows on, :meth:`LinearPipeline.predict` uses the folded map (one pass over the matrix)...
FOLD_FROM_ROWS = 64
#: ...for inputs where it provably stays this close to scikit-learn's arithmetic (half the promised 1e-9).
FOLD_TOLERANCE = 5e-10
#: From this many predictions on, :meth:`ScoringService.respond` returns serialised JSON: orjson writes
#: 1,000 floats in ~15 µs where the server's ``json.dumps`` takes ~250 µs.
SERIALIZE_FROM_ROWS = 16
#: The linear estimators :func:`read_linear_pipeline` understands: predict is ``X @ coef_ + intercept_``.
_LINEAR_ESTIMATORS = frozenset(
    {("sklearn.linear_model._ridge", "Ridge"), ("sklearn.linear_model._base", "LinearRegression")}
)
_STANDARD_SCALER = ("sklearn.preprocessing._data", "StandardScaler")


class RequestError(ValueError):
    """A request the service refuses; ``status`` is the HTTP status to answer with."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


# --- the model ----------------------------------------------------------------------------------------


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


class LoadedModel:
    """A fitted model with what the service needs to know about it.

    Attributes:
        features: Input column names, in model order (the MLflow signature).
        name: Registered model name reported in responses.
        version: Registered version reported in responses.
        model_file: The skops file.
        linear: The model as a :class:`LinearPipeline` when it is one, else ``None``.
    """

    def __init__(
        self,
        features: tuple[str, ...],
        name: str,
        version: str,
        model_file: Path,
        linear: LinearPipeline | None = None,
        estimator: Any = None,
    ):
        self.features = tuple(features)
        self.name = name
        self.version = version
        self.model_file = Path(model_file)
        self.linear = linear
        self._estimator = estimator

    @property
    def estimator(self) -> Any:
        """The scikit-learn estimator, loaded by skops (on first use when the linear fast path serves)."""
        if self._estimator is None:
            self._estimator = load_estimator(self.model_file)
        return self._estimator

    def __repr__(self) -> str:
        path = "linear" if self.linear is not None else "estimator"
        return f"LoadedModel({self.name!r}, {self.version!r}, {len(self.features)} features, {path})"


def find_mlmodel_dir(model_dir: Path) -> Path:
    """Return the folder holding the ``MLmodel`` file: ``model_dir`` itself or its only child that has one.

    Azure ML mounts a registered folder model as ``$AZUREML_MODEL_DIR/<folder name>/``.
    """
    model_dir = Path(model_dir)
    if (model_dir / "MLmodel").is_file():
        return model_dir
    found = sorted(p.parent for p in model_dir.glob("*/MLmodel"))
    if len(found) != 1:
        raise FileNotFoundError(
            f"{model_dir}: expected one MLflow model folder (with an MLmodel file), found {len(found)}"
        )
    return found[0]


def read_signature_features(mlmodel: dict, source: Path) -> tuple[str, ...]:
    """Feature names, in order, from the ``signature.inputs`` of a parsed ``MLmodel`` file."""
    try:
        inputs = json.loads(mlmodel["signature"]["inputs"])
        return tuple(column["name"] for column in inputs)
    except (KeyError, TypeError, ValueError) as error:
        raise ValueError(f"{source}: MLmodel has no usable column signature ({error})") from None


def load_estimator(model_path: Path) -> Any:
    """Load a skops-serialised estimator, trusting only scikit-learn, NumPy and SciPy types."""
    import skops.io as sio

    untrusted = sio.get_untrusted_types(file=model_path)
    refused = [name for name in untrusted if not name.startswith(_TRUSTED_MODULE_PREFIXES)]
    if refused:
        raise ValueError(f"{model_path}: refusing to load types outside scikit-learn/NumPy/SciPy: {refused}")
    return sio.load(model_path, trusted=untrusted)


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


def load_model(model_dir: Path, name: str = "", version: str = "") -> LoadedModel:
    """Load an MLflow scikit-learn model folder without importing MLflow.

    Args:
        model_dir: The MLflow model folder, or a folder containing exactly one.
        name: Registered model name reported in responses.
        version: Registered version reported in responses.
    """
    folder = find_mlmodel_dir(model_dir)
    mlmodel_path = folder / "MLmodel"
    mlmodel = yaml.safe_load(mlmodel_path.read_text())
    flavor = (mlmodel.get("flavors") or {}).get("sklearn")
    if not flavor:
        raise ValueError(f"{mlmodel_path}: not a scikit-learn MLflow model (no 'sklearn' flavor)")
    if flavor.get("serialization_format") != "skops":
        raise ValueError(
            f"{mlmodel_path}: serialization_format is {flavor.get('serialization_format')!r}; "
            "only 'skops' is loaded (pickle is unsafe to load)"
        )
    features = read_signature_features(mlmodel, mlmodel_path)
    model_file = folder / flavor["pickled_model"]
    linear = read_linear_pipeline(model_file)
    if linear is not None and linear.n_features == len(features):
        return LoadedModel(features, name, version, model_file, linear=linear)
    return LoadedModel(features, name, version, model_file, estimator=load_estimator(model_file))


def model_identity(model_dir: Path) -> tuple[str, str]:
    """Name and version from an Azure ML style path ``.../azureml-models/<name>/<version>``."""
    path = Path(model_dir).resolve()
    return path.parent.name, path.name


# --- requests -----------------------------------------------------------------------------------------


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


_parsers = threading.local()  # a simdjson parser is reused (it keeps its buffers) but is not thread-safe
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
    parser = getattr(_parsers, "parser", None)
    if parser is None:
        parser = _parsers.parser = simdjson.Parser()
    try:
        document = parser.parse(body)
        try:
            flat = document["data"].as_buffer(of_type="d")
        finally:
            del document  # the parser refuses to parse again while a document is alive
    except (ValueError, TypeError, KeyError, RuntimeError):  # malformed, a literal, a key other than "data", big int
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


# --- the service --------------------------------------------------------------------------------------


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


def openapi_spec(features: tuple[str, ...], model_name: str, model_version: str, limits: ScoringSettings) -> dict:
    """The OpenAPI 3 description of ``/score`` for this model, served as ``/swagger.json?version=3``."""
    number = {"type": "number"}
    row_list = {
        "type": "array",
        "items": number,
        "minItems": len(features),
        "maxItems": len(features),
        "description": "Values in column order: " + ", ".join(features),
    }
    row_record = {
        "type": "object",
        "properties": {name: number for name in features},
        "required": list(features),
        "additionalProperties": False,
    }
    request = {
        "type": "object",
        "required": ["data"],
        "additionalProperties": False,
        "properties": {
            "data": {
                "type": "array",
                "minItems": 1,
                "maxItems": limits.max_batch_rows,
                "items": {"oneOf": [row_list, row_record]},
            }
        },
        "example": {"data": [[59.0, 2.0, 32.1, 101.0, 157.0, 93.2, 38.0, 4.0, 4.8598, 87.0]]},
    }
    response = {
        "type": "object",
        "required": ["predictions", "model"],
        "properties": {
            "predictions": {"type": "array", "items": number},
            "model": {
                "type": "object",
                "properties": {"name": {"type": "string"}, "version": {"type": "string"}},
            },
        },
    }
    error = {"type": "object", "required": ["message"], "properties": {"message": {"type": "string"}}}

    def content(schema_ref: str) -> dict:
        return {"application/json": {"schema": {"$ref": f"#/components/schemas/{schema_ref}"}}}

    return {
        "openapi": "3.0.3",
        "info": {
            "title": model_name,
            "version": model_version,
            "description": f"Real-time scoring for {model_name} version {model_version}.",
        },
        "paths": {
            "/": {"get": {"operationId": "liveness", "responses": {"200": {"description": "Healthy"}}}},
            "/score": {
                "post": {
                    "operationId": "score",
                    "requestBody": {"required": True, "content": content("ServiceInput")},
                    "responses": {
                        "200": {"description": "Predictions", "content": content("ServiceOutput")},
                        "400": {"description": "Malformed request", "content": content("ErrorResponse")},
                        "413": {"description": "Request body too large", "content": content("ErrorResponse")},
                    },
                }
            },
        },
        "components": {
            "schemas": {"ServiceInput": request, "ServiceOutput": response, "ErrorResponse": error},
        },
    }


def swagger2_spec(features: tuple[str, ...], model_name: str, model_version: str, limits: ScoringSettings) -> dict:
    """The Swagger 2.0 description served at ``/swagger.json`` (Swagger 2 has no ``oneOf``: rows as lists)."""
    spec3 = openapi_spec(features, model_name, model_version, limits)
    schemas = spec3["components"]["schemas"]
    request = json.loads(json.dumps(schemas["ServiceInput"]))
    row_list, row_record = request["properties"]["data"]["items"]["oneOf"]
    request["properties"]["data"]["items"] = row_list
    request["properties"]["data"]["description"] = (
        "Rows as lists of numbers in column order; objects keyed by column name are also accepted: "
        + ", ".join(row_record["properties"])
    )

    def ref(name: str) -> dict:
        return {"$ref": f"#/definitions/{name}"}

    return {
        "swagger": "2.0",
        "info": spec3["info"],
        "schemes": ["http", "https"],
        "consumes": ["application/json"],
        "produces": ["application/json"],
        "paths": {
            "/": {"get": {"operationId": "liveness", "responses": {"200": {"description": "Healthy"}}}},
            "/score": {
                "post": {
                    "operationId": "score",
                    "parameters": [{"name": "body", "in": "body", "required": True, "schema": ref("ServiceInput")}],
                    "responses": {
                        "200": {"description": "Predictions", "schema": ref("ServiceOutput")},
                        "400": {"description": "Malformed request", "schema": ref("ErrorResponse")},
                        "413": {"description": "Request body too large", "schema": ref("ErrorResponse")},
                    },
                }
            },
        },
        "definitions": {
            "ServiceInput": request,
            "ServiceOutput": schemas["ServiceOutput"],
            "ErrorResponse": schemas["ErrorResponse"],
        },
    }
