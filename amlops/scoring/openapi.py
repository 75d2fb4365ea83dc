"""The OpenAPI 3 and Swagger 2 documents of the endpoint: the model's signature, rules, classes and limits."""

from __future__ import annotations

import json

from amlops.core.settings import ScoringSettings
from amlops.scoring.rules import Rules


def _column(rules: Rules | None, index: int) -> dict:
    """A column's schema: a number (an integer for an int column), with its contract range or categories."""
    if rules is None:
        return {"type": "number"}
    schema: dict = {"type": "integer" if index in rules.whole else "number"}
    if index in rules.categories:
        schema["enum"] = rules.categories[index].tolist()
    for bound, value in (("minimum", rules.low[index]), ("maximum", rules.high[index])):
        if abs(value) != float("inf"):
            schema[bound] = float(value)
    return schema


def _example(rules: Rules | None, width: int) -> list[float]:
    """One row inside the rules: a category, the middle of a range, or 0."""
    if rules is None:
        return [0.0] * width
    row = []
    for index in range(width):
        low, high = float(rules.low[index]), float(rules.high[index])
        if index in rules.categories:
            row.append(float(rules.categories[index][0]))
        elif abs(low) != float("inf") and abs(high) != float("inf"):
            row.append(float((low + high) // 2) if index in rules.whole else (low + high) / 2)
        else:
            row.append(low if abs(low) != float("inf") else (high if abs(high) != float("inf") else 0.0))
    return row


def _label(classes: list) -> dict:
    kind = "string" if all(isinstance(c, str) for c in classes) else "integer"
    kind = "number" if any(isinstance(c, float) for c in classes) else kind
    return {"type": kind, "enum": list(classes)}


def openapi_spec(
    features: tuple[str, ...],
    model_name: str,
    model_version: str,
    limits: ScoringSettings,
    classes: list | None = None,
    rules: Rules | None = None,
) -> dict:
    """The OpenAPI 3 description of ``/score`` for this model, served as ``/swagger.json?version=3``.

    Args:
        features: The input columns in model order.
        model_name: Registered model name.
        model_version: Registered version.
        limits: The request limits and answer options.
        classes: A classifier's class labels (``None`` for a regression).
        rules: The contract's ranges and categories the model recorded.
    """
    number = {"type": "number"}
    columns = [_column(rules, index) for index in range(len(features))]
    row_list = {
        "type": "array",
        "items": number,
        "minItems": len(features),
        "maxItems": len(features),
        "description": "Values in column order: " + ", ".join(features),
    }
    row_record = {
        "type": "object",
        "properties": dict(zip(features, columns, strict=True)),
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
        "example": {"data": [_example(rules, len(features))]},
    }
    answer: dict = {"predictions": {"type": "array", "items": number if classes is None else _label(classes)}}
    if classes is not None and limits.probabilities:
        answer["probabilities"] = {
            "type": "array",
            "description": "Each row's probability per class (when the model has predict_proba)",
            "items": {
                "type": "object",
                "properties": {str(label): {"type": "number", "minimum": 0, "maximum": 1} for label in classes},
            },
        }
    if rules is not None and limits.out_of_range == "flag":
        answer["out_of_range"] = {
            "type": "array",
            "description": "Values outside the contract's ranges or categories, answered anyway",
            "items": {
                "type": "object",
                "properties": {
                    "row": {"type": "integer"},
                    "column": {"type": "string"},
                    "value": number,
                    "rule": {"type": "string"},
                },
            },
        }
    answer["model"] = {"type": "object", "properties": {"name": {"type": "string"}, "version": {"type": "string"}}}
    response = {"type": "object", "required": ["predictions", "model"], "properties": answer}
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


def swagger2_spec(
    features: tuple[str, ...],
    model_name: str,
    model_version: str,
    limits: ScoringSettings,
    classes: list | None = None,
    rules: Rules | None = None,
) -> dict:
    """The Swagger 2.0 description served at ``/swagger.json`` (Swagger 2 has no ``oneOf``: rows as lists)."""
    spec3 = openapi_spec(features, model_name, model_version, limits, classes, rules)
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
