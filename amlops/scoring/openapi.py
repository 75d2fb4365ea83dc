"""The OpenAPI 3 and Swagger 2 documents of the endpoint, from the model's signature and the request limits."""

from __future__ import annotations

import json

from amlops.core.settings import ScoringSettings


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
