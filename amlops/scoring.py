"""The scoring contract behind ``score.py``: load the model once, validate requests, predict.

Kept free of MLflow and pandas so that a serving worker starts fast and stays small: the model is read
straight from the MLflow model folder (its ``MLmodel`` file names the skops file and the signature).

Request bodies (``DESIGN.md`` §5)::

    {"data": [[59, 2, 32.1, 101, 157, 93.2, 38, 4, 4.8598, 87], ...]}
    {"data": [{"age": 59, "sex": 2, "bmi": 32.1, ...}, ...]}

Response: ``{"predictions": [...], "model": {"name": ..., "version": ...}}``. Every malformed request is
answered with a 4xx status and ``{"message": ...}`` naming the problem.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from amlops.settings import ScoringSettings

_NUMBER_TYPES = frozenset({int, float})
_TRUSTED_MODULE_PREFIXES = ("sklearn.", "numpy.", "scipy.")


class RequestError(ValueError):
    """A request the service refuses; ``status`` is the HTTP status to answer with."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True)
class LoadedModel:
    """A fitted estimator with what the service needs to know about it."""

    estimator: Any
    features: tuple[str, ...]
    name: str
    version: str


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
    estimator = load_estimator(folder / flavor["pickled_model"])
    return LoadedModel(estimator, read_signature_features(mlmodel, mlmodel_path), name, version)


def model_identity(model_dir: Path) -> tuple[str, str]:
    """Name and version from an Azure ML style path ``.../azureml-models/<name>/<version>``."""
    path = Path(model_dir).resolve()
    return path.parent.name, path.name


def parse_rows(raw: str | bytes, features: tuple[str, ...], limits: ScoringSettings) -> np.ndarray:
    """Turn a request body into a float matrix with columns in ``features`` order.

    Raises:
        RequestError: 413 for an oversize body, 400 naming the problem for anything else malformed.
    """
    size = len(raw)
    if isinstance(raw, str) and size <= limits.max_request_bytes:
        size = len(raw.encode("utf-8", "surrogatepass"))  # the limit is in bytes; the server passes a str
    if size > limits.max_request_bytes:
        raise RequestError(413, f"request body of {size} bytes exceeds the limit of {limits.max_request_bytes} bytes")
    try:
        body = json.loads(raw)
    except (ValueError, RecursionError) as error:
        raise RequestError(400, f"request body is not valid JSON: {error}") from None
    if not isinstance(body, dict) or "data" not in body:
        raise RequestError(400, 'request body must be a JSON object with a "data" field')
    extra = sorted(set(body) - {"data"})
    if extra:
        raise RequestError(400, f'unknown top-level field(s) {extra}; only "data" is accepted')
    rows = body["data"]
    if not isinstance(rows, list):
        raise RequestError(400, f'"data" must be a list of rows, got {_json_type(rows)}')
    if not rows:
        raise RequestError(400, '"data" is an empty batch; send at least one row')
    if len(rows) > limits.max_batch_rows:
        raise RequestError(400, f"batch of {len(rows)} rows exceeds the maximum of {limits.max_batch_rows} rows")
    if isinstance(rows[0], dict):
        rows = _records_to_rows(rows, features)
    else:
        _check_list_rows(rows, features)
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


class ScoringService:
    """What ``score.py`` delegates to: one loaded model and the request limits."""

    def __init__(self, model: LoadedModel, limits: ScoringSettings | None = None):
        self.model = model
        self.limits = limits or ScoringSettings()

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
        predictions = self._finite_predictions(matrix)
        if predictions is not None:
            return predictions.tolist()
        low, high = 0, len(matrix)  # rows are predicted independently: bisect to the first one that overflows
        while high - low > 1:
            middle = (low + high) // 2
            if self._finite_predictions(matrix[low:middle]) is None:
                high = middle
            else:
                low = middle
        raise RequestError(400, f"row {low}: values are too large for the model (its arithmetic overflows)")

    def _finite_predictions(self, matrix: np.ndarray) -> np.ndarray | None:
        with np.errstate(over="ignore", invalid="ignore"):
            try:
                predictions = np.asarray(self.model.estimator.predict(matrix), dtype=np.float64)
            except ValueError as error:  # scikit-learn's check of a step's input, e.g. "Input X contains infinity"
                if "infinity" not in str(error) and "NaN" not in str(error):
                    raise
                return None
        return predictions if np.isfinite(predictions).all() else None

    def handle(self, raw: str | bytes) -> tuple[int, dict]:
        """Answer one request body with an HTTP status and a JSON-ready payload."""
        try:
            predictions = self.predict(parse_rows(raw, self.model.features, self.limits))
        except RequestError as error:
            return error.status, {"message": error.message}
        return 200, {
            "predictions": predictions,
            "model": {"name": self.model.name, "version": self.model.version},
        }


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
