"""The OpenAPI 3.1 document of the model server, served at ``/openapi.json``.

The document is as tight as the server: a request that fits it is one the server takes (the one
rule JSON Schema cannot state is that a v2 tensor's ``shape`` must multiply out to the number of
``data`` elements).  So text models get a request schema for their one BYTES input and their
named outputs, every datatype is an enum, shapes are non-negative and item counts are bounded by
the server's limits.  Fuzzers (schemathesis) run against it as a standing test.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from conveyor import __version__
from conveyor.serving.spec import ModelSpec
from conveyor.serving.tabular import FLOAT32_MAX
from conveyor.serving.tasks.text import TEXT_INPUT
from conveyor.serving.v2 import DATATYPES, InferenceResponse
from conveyor.task_kinds import Task

TEXT_OUTPUTS = ("logits", "label", "probabilities")

ERROR = {"$ref": "#/components/schemas/Error"}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _errors(*codes: int) -> dict[str, Any]:
    reasons = {
        400: "Malformed JSON or a request the model cannot take",
        404: "Unknown model or version",
        413: "Body over the size limit, or too many items",
        415: "Content-Type is not application/json",
        422: "Well-formed JSON of the wrong shape (empty list, non-string items, null, objects)",
        503: "The model is not loaded and warmed up yet",
    }
    return {str(code): _json(ERROR, reasons[code]) for code in codes}


def _model_params(versioned: bool) -> list[dict[str, Any]]:
    params = [{"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}]
    if versioned:
        params.append({"name": "version", "in": "path", "required": True, "schema": {"type": "string"}})
    return params


def _parameters() -> dict[str, Any]:
    return {
        "type": ["object", "null"],
        "properties": {"binary_data_output": {"type": "boolean"}},
        "additionalProperties": False,
    }


def _tensor(shape: dict[str, Any], datatype: dict[str, Any], data: dict[str, Any], name: Any = None) -> dict[str, Any]:
    named = {"type": "string", "minLength": 1} if name is None else {"const": name}  # the server checks names
    return {
        "type": "object",
        "required": ["name", "shape", "datatype", "data"],
        "additionalProperties": False,
        "properties": {"name": named, "shape": shape, "datatype": datatype, "data": data},
    }


def _requested_outputs(name: dict[str, Any]) -> dict[str, Any]:
    """A v2 request's optional list of the outputs it wants, each named as ``name`` allows."""
    return {
        "type": ["array", "null"],
        "items": {
            "type": "object",
            "required": ["name"],
            "additionalProperties": False,
            "properties": {"name": name, "parameters": {"type": ["object", "null"]}},
        },
    }


def _inference_request(text: bool, max_items: int) -> dict[str, Any]:
    """The v2 request body this server takes: one BYTES input for text models, typed tensors otherwise."""
    if text:
        count = {"type": "integer", "minimum": 1, "maximum": max_items}
        tensor = _tensor(
            {"type": "array", "items": count, "minItems": 1, "maxItems": 1},
            {"type": "string", "enum": ["BYTES"]},
            {"type": "array", "items": {"type": "string"}, "minItems": 1, "maxItems": max_items},
            TEXT_INPUT,
        )
        inputs: dict[str, Any] = {"type": "array", "items": tensor, "minItems": 1, "maxItems": 1}
        output_name: dict[str, Any] = {"type": "string", "enum": list(TEXT_OUTPUTS)}
    else:
        tensor = _tensor(
            {"type": "array", "items": {"type": "integer", "minimum": 0}},
            {"type": "string", "enum": list(DATATYPES)},
            {"type": "array"},
        )
        inputs = {"type": "array", "items": tensor, "minItems": 1}
        output_name = {"type": "string", "minLength": 1}
    return {
        "type": "object",
        "required": ["inputs"],
        "description": "Unknown top-level fields (model_name, as the KServe SDK sends) are ignored.",
        "properties": {
            "id": {"type": ["string", "null"]},
            "parameters": _parameters(),
            "inputs": inputs,
            "outputs": _requested_outputs(output_name),
        },
    }


JSON_TYPES = {"number": "number", "integer": "integer", "string": "string", "boolean": "boolean"}
FLOATS = ["FP32", "FP64"]  # FP16 too, where its values fit: 65504 at most
# per feature: name, type, the only categories it takes (unseen: refuse), whether it may be missing (null)
Features = tuple[tuple[str, str, tuple[str, ...] | None, bool], ...]


def _cell(kind: str, categories: tuple[str, ...] | None = None, missing: bool = False) -> dict[str, Any]:
    cell: dict[str, Any] = {"type": JSON_TYPES[kind]}
    if kind in ("number", "integer"):
        cell.update(minimum=-FLOAT32_MAX, maximum=FLOAT32_MAX)
    if categories:
        cell["enum"] = list(categories)
    return {"anyOf": [cell, {"type": "null"}]} if missing else cell


def _tabular_predict(
    task: Task, labels: tuple[str, ...], boolean: str | None, features: Features, max_items: int
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The /predict request and answer of a tabular model, generated from its features."""
    properties = {name: _cell(kind, categories, missing) for name, kind, categories, missing in features}
    names = [name for name, *_ in features]
    record = {"type": "object", "properties": properties, "required": names, "additionalProperties": False}
    records = {"type": "array", "items": record, "minItems": 1, "maxItems": max_items}
    row = {
        "type": "array",
        "prefixItems": [_cell(kind, categories, missing) for _, kind, categories, missing in features],
        "items": False,
        "minItems": len(names),
    }
    split = {
        "type": "object",
        "required": ["columns", "data"],
        "additionalProperties": False,
        "description": "pandas' split orientation (MLflow's dataframe_split). Documented in the model's column "
        "order; the server takes the columns in any order.",
        "properties": {
            "columns": {"const": names},
            "data": {"type": "array", "items": row, "minItems": 1, "maxItems": max_items},
            "index": {"type": ["array", "null"], "items": {"type": ["number", "string"]}},
        },
    }
    request = {
        "oneOf": [
            records,
            record,
            split,
            {"type": "object", "required": ["dataframe_records"], "additionalProperties": False,
             "properties": {"dataframe_records": records}},
            {"type": "object", "required": ["dataframe_split"], "additionalProperties": False,
             "properties": {"dataframe_split": split}},
        ],
        "description": "Rows of named columns. A mistyped, missing or unknown column is a 422 naming it.",
    }  # fmt: skip
    if task.regression:
        answer: dict[str, Any] = {
            "type": "object",
            "properties": {"value": {"type": "number"}},
            "required": ["value"],
            "additionalProperties": False,
        }
    else:
        props: dict[str, Any] = {
            "label": {"type": "string", "enum": list(labels)},
            "probabilities": {
                "type": "object",
                "properties": {label: {"type": "number", "minimum": 0, "maximum": 1} for label in labels},
                "required": list(labels),
                "additionalProperties": False,
            },
        }
        if boolean is not None:
            props[boolean] = {"type": "boolean"}
        answer = {"type": "object", "properties": props, "required": list(props), "additionalProperties": False}
    return request, answer


def _tabular_inference_request(task: Task, features: Features, max_items: int) -> dict[str, Any]:
    """v2: one named input per column, shape [N] or [N, 1] (MLServer's pandas codec)."""
    rows = {"type": "integer", "minimum": 1, "maximum": max_items}
    shape = {"type": "array", "prefixItems": [rows, {"const": 1}], "items": False, "minItems": 1, "maxItems": 2}

    def tensor(name: str, datatypes: list[str], item: dict[str, Any]) -> dict[str, Any]:
        return {
            "type": "object",
            "required": ["name", "shape", "datatype", "data"],
            "additionalProperties": False,
            "properties": {
                "name": {"const": name},
                "shape": shape,
                "datatype": {"type": "string", "enum": datatypes},
                "data": {"type": "array", "items": item, "minItems": 1, "maxItems": max_items},
                "parameters": {"type": ["object", "null"]},
            },
        }

    def variants(name: str, kind: str, categories: tuple[str, ...] | None, missing: bool) -> dict[str, Any]:
        """The tensors a column may come as; documented: float columns and INT64 (the server takes every
        integer width whose values fit)."""
        integer = {"type": "integer", "minimum": -(2**63), "maximum": 2**63 - 1}
        options = {
            "number": [tensor(name, FLOATS, _cell("number", None, missing)), tensor(name, ["INT64"], integer)],
            "integer": [tensor(name, ["INT64"], integer)],
            "string": [tensor(name, ["BYTES"], _cell("string", categories, missing))],
            "boolean": [tensor(name, ["BOOL"], {"type": "boolean"})],
        }[kind]
        return {"anyOf": options}

    tensors = [variants(*feature) for feature in features]
    outputs = ["value", "predict"] if task.regression else [
        "label", "predict", "probabilities", "predict_proba"]  # fmt: skip
    return {
        "type": "object",
        "required": ["inputs"],
        "description": "One input per feature, each named after it, all with the same number of rows; "
        "unknown top-level fields are ignored.",
        "properties": {
            "id": {"type": ["string", "null"]},
            "parameters": _parameters(),
            "inputs": {
                "type": "array",
                "description": "Documented in the model's column order; the server takes them in any order.",
                "prefixItems": tensors,
                "items": False,
                "minItems": len(features),
            },
            "outputs": _requested_outputs({"type": "string", "enum": outputs}),
        },
    }


@lru_cache(maxsize=8)
def _document(
    labels: tuple[str, ...],
    boolean: str | None,
    text: bool,
    max_items: int,
    task: Task = Task.TEXT_CLASSIFICATION,
    features: Features = (),
) -> dict[str, Any]:
    if boolean is not None:
        answer = {
            "type": "object",
            "properties": {boolean: {"type": "boolean"}},
            "required": [boolean],
            "additionalProperties": False,
        }
    else:
        answer = {
            "type": "object",
            "properties": {"label": {"type": "string", "enum": list(labels)}},
            "required": ["label"],
            "additionalProperties": False,
        }
    predict_request = {
        "type": "array",
        "items": {"type": "string"},
        "minItems": 1,
        "maxItems": max_items,
        "examples": [["MLOps is critical for robustness"]],
    }
    summary = "Classify texts (the classic contract)"
    detail = "Texts longer than the model's max_length tokens are truncated."
    if features:
        predict_request, answer = _tabular_predict(task, labels, boolean, features, max_items)
        summary = "Predict from rows of named columns"
        detail = "JSON records, one record, or pandas' split frame; one answer per row."
    predict_response = {
        "oneOf": [answer, {"type": "array", "items": answer, "minItems": 2}],
        "description": "One item in: one object. N items in: a list of N objects, in order.",
    }
    paths: dict[str, Any] = {
        "/predict": {
            "post": {
                "summary": summary,
                "description": detail,
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": predict_request}},
                },
                "responses": {
                    "200": _json(predict_response, "One answer per text"),
                    **_errors(400, 413, 415, 422, 503),
                },
            }
        },
        "/v2": {"get": {"summary": "Server metadata", "responses": {"200": _json({"type": "object"}, "OK")}}},
        "/v2/health/live": {
            "get": {"summary": "Liveness", "responses": {"200": _json({"type": "object"}, "Process is up")}}
        },
        "/v2/health/ready": {
            "get": {
                "summary": "Readiness: model loaded and warmed up",
                "responses": {"200": _json({"type": "object"}, "Ready"), **_errors(503)},
            }
        },
        "/metrics": {
            "get": {
                "summary": "Prometheus metrics",
                "responses": {"200": {"description": "Exposition text", "content": {"text/plain": {}}}},
            }
        },
        "/openapi.json": {"get": {"summary": "This document", "responses": {"200": _json({"type": "object"}, "OK")}}},
        "/v2/repository/index": {
            "post": {
                "summary": "The models this server serves (model repository extension)",
                "responses": {"200": _json({"$ref": "#/components/schemas/RepositoryIndex"}, "Models")},
            }
        },
    }
    for versioned in (False, True):
        base = "/v2/models/{name}" + ("/versions/{version}" if versioned else "")
        params = _model_params(versioned)
        paths[base] = {
            "get": {
                "summary": "Model metadata",
                "parameters": params,
                "responses": {"200": _json({"type": "object"}, "Metadata"), **_errors(404)},
            }
        }
        paths[base + "/ready"] = {
            "get": {
                "summary": "Model readiness",
                "parameters": params,
                "responses": {"200": _json({"type": "object"}, "Ready"), **_errors(404, 503)},
            }
        }
        paths[base + "/infer"] = {
            "post": {
                "summary": "Inference (Open Inference Protocol v2)",
                "description": "Text goes in as one BYTES tensor of shape [N] or [N, 1]; outputs are "
                "logits (FP32 [N, labels]), label (BYTES [N]) and, on request, probabilities. "
                "Models without a tokenizer take raw tensors named after the ONNX inputs. "
                "The binary tensor data extension (Inference-Header-Content-Length) is supported.",
                "parameters": params,
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/InferenceRequest"}}},
                },
                "responses": {
                    "200": {
                        "description": "Outputs: JSON, or JSON + binary tensor data where the request asked for it",
                        "content": {
                            "application/json": {"schema": {"$ref": "#/components/schemas/InferenceResponse"}},
                            "application/octet-stream": {},
                        },
                    },
                    **_errors(400, 404, 413, 415, 422, 503),
                },
            }
        }
    response_schema = InferenceResponse.model_json_schema(ref_template="#/components/schemas/{model}")
    schemas: dict[str, Any] = {
        "Error": {
            "type": "object",
            "properties": {"error": {"type": "string"}},
            "required": ["error"],
        },
        "InferenceRequest": (
            _tabular_inference_request(task, features, max_items) if features else _inference_request(text, max_items)
        ),
        "RepositoryIndex": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["name", "version", "state"],
                "properties": {
                    "name": {"type": "string"},
                    "version": {"type": "string"},
                    "state": {"type": "string", "enum": ["READY", "LOADING", "UNAVAILABLE"]},
                },
            },
        },
    }
    schemas.update(response_schema.pop("$defs", {}))
    schemas[response_schema["title"]] = response_schema
    return {
        "openapi": "3.1.0",
        "info": {"title": "Conveyor model server", "version": __version__},
        "paths": paths,
        "components": {"schemas": schemas},
    }


def openapi_document(spec: ModelSpec, max_items: int) -> dict[str, Any]:
    refused = {f.name: tuple(f.values) for f in spec.features if f.unseen == "refuse" and f.values}
    features = tuple((f.name, f.type, refused.get(f.name), f.missing) for f in spec.features) if spec.tabular else ()
    return _document(tuple(spec.labels), spec.boolean_label, spec.task.takes_text, max_items, spec.task, features)
