"""The default contract for the served model's task, from its v2 metadata.

A contract written for the reference model sends ``["MLOps is critical for robustness"]`` and
expects ``{"positive": bool}``; a text classifier with other labels answers ``{"label", "score"}``
(its labels named in the schema), never the sentiment model's answer.  A tabular or image model
takes records or images and answers labels with probabilities, values or the best labels: where
the contract file leaves the
sample, the answer's schema or the bad inputs unset, they are made here from what the server
says about the model (its task, features with their types and categories, image size), so
``conveyor verify`` checks each task's real contract with no contract file at all.
"""

from __future__ import annotations

import base64
import io
from typing import Any

import httpx

from conveyor.extras import needs
from conveyor.task_kinds import Task
from conveyor.verify.contract import Contract, InvalidCase, V2Settings

_EXAMPLE = {"number": 0.5, "integer": 1, "string": "", "boolean": False}
_V2_TYPE = {"number": "FP64", "integer": "INT64", "string": "BYTES", "boolean": "BOOL"}


def served_metadata(url: str, client: httpx.Client, settings: V2Settings) -> dict[str, Any]:
    path = f"/v2/models/{settings.model}" + (f"/versions/{settings.version}" if settings.version else "")
    try:
        response = client.get(url.rstrip("/") + path)
        body = response.json() if response.status_code == 200 else {}
    except (httpx.HTTPError, ValueError):
        return {}
    return body if isinstance(body, dict) else {}


def for_task(contract: Contract, metadata: dict[str, Any]) -> Contract:
    """``contract`` with what it leaves unset filled for the model's task (a tensor model: unchanged)."""
    given = metadata.get("parameters")
    parameters: dict[str, Any] = given if isinstance(given, dict) else {}
    task = Task.of(parameters.get("task"))
    if task is not None and task.tabular and parameters.get("features"):
        made = _tabular(task, parameters)
    elif task is not None and task.takes_images and isinstance(parameters.get("image"), dict):
        made = _image(parameters)
    elif task is not None and task.takes_text and isinstance(parameters.get("labels"), list):
        if "response_schema" in contract.model_fields_set:
            return contract
        return contract.model_copy(update={"response_schema": text_schema(parameters)})
    else:
        return contract
    unset = {k: v for k, v in made.items() if k not in contract.model_fields_set}
    if "v2" in unset:
        unset.pop("v2")
    if "sample_input" not in contract.model_fields_set and contract.v2 is not None:
        unset["v2"] = contract.v2.model_copy(update={"inputs": made["v2"]})
    return contract.model_copy(update=unset)


def text_schema(parameters: dict[str, Any]) -> dict[str, Any]:
    """A text classifier's answer: ``{boolean_label: bool}`` for two labels (the seed's sentiment
    contract, ``{"positive": bool}``), else its label among its labels with the label's probability."""
    boolean = parameters.get("boolean_label")
    if "boolean_label" not in parameters and len(parameters["labels"]) == 2:  # a server from before it said
        boolean = "positive" if "positive" in parameters["labels"] else parameters["labels"][1]
    if isinstance(boolean, str):
        return {"type": "object", "properties": {boolean: {"type": "boolean"}}, "required": [boolean]}
    return {
        "type": "object",
        "properties": {
            "label": {"enum": parameters["labels"]},
            "score": {"type": "number", "minimum": 0, "maximum": 1},
        },
        "required": ["label", "score"],
    }


def _record(features: list[dict[str, Any]]) -> dict[str, Any]:
    return {f["name"]: (f.get("values") or [_EXAMPLE[f.get("type", "number")]])[0] for f in features}


def _tabular(task: Task, parameters: dict[str, Any]) -> dict[str, Any]:
    features = parameters["features"]
    record = _record(features)
    if task.regression:
        schema = {"type": "object", "properties": {"value": {"type": "number"}}, "required": ["value"]}
    else:
        schema = {
            "type": "object",
            "properties": {"label": {"enum": parameters.get("labels", [])}, "probabilities": {"type": "object"}},
            "required": ["label", "probabilities"],
        }
    invalid = [
        *_every_task(),
        InvalidCase(name="missing-column", body="[{}]", status=422, error_contains="missing column"),
        InvalidCase(
            name="unknown-column",
            body=_json([{**record, "conveyor_unknown": 1}]),
            status=422,
            error_contains="unknown column",
        ),
        InvalidCase(name="wrong-content-type", body=_json([record]), content_type="text/plain", status=415),
    ]
    numeric = next((f["name"] for f in features if f.get("type") in ("number", "integer")), None)
    if numeric is not None:
        invalid.append(
            InvalidCase(
                name="mistyped-column",
                body=_json([{**record, numeric: "not a number"}]),
                status=422,
                error_contains=f"column {numeric!r}",
            )
        )
    refusing = next((f for f in features if f.get("unseen") == "refuse" and f.get("values")), None)
    if refusing is not None:  # an encoder that fails on another category: refused before it reaches the model
        invalid.append(
            InvalidCase(
                name="unseen-category",
                body=_json([{**record, refusing["name"]: "conveyor-unseen-category"}]),
                status=422,
                error_contains="not trained on",
            )
        )
    strict = next((f for f in features if not f.get("missing")), None)
    if strict is not None:
        invalid.append(
            InvalidCase(
                name="missing-value",
                body=_json([{**record, strict["name"]: None}]),
                status=422,
                error_contains="missing value",
            )
        )
    v2 = [
        {"name": f["name"], "datatype": _V2_TYPE[f.get("type", "number")], "shape": [1, 1], "data": [record[f["name"]]]}
        for f in features
    ]
    return {"sample_input": [record], "response_schema": schema, "invalid": invalid, "v2": v2}


def _image(parameters: dict[str, Any]) -> dict[str, Any]:
    with needs("images", "an image-classification model's contract"):
        from PIL import Image

    image = parameters["image"]
    mode = "L" if image.get("channels") == 1 else "RGB"
    buffer = io.BytesIO()
    Image.new(mode, (int(image["width"]), int(image["height"])), color=128 if mode == "L" else (128, 128, 128)).save(
        buffer, format="PNG"
    )
    encoded = base64.b64encode(buffer.getvalue()).decode()
    labels = parameters.get("labels", [])
    schema = {
        "type": "object",
        "properties": {
            "label": {"enum": labels},
            "score": {"type": "number", "minimum": 0, "maximum": 1},
            "top": {"type": "array", "minItems": 1},
        },
        "required": ["label", "score", "top"],
    }
    invalid = [
        *_every_task(),
        InvalidCase(name="not-base64", body='["%%%"]', status=422, error_contains="base64"),
        InvalidCase(
            name="not-an-image",
            body=_json([base64.b64encode(b"hello").decode()]),
            status=422,
            error_contains="not a PNG or JPEG",
        ),
        InvalidCase(name="wrong-content-type", body=_json([encoded]), content_type="text/plain", status=415),
    ]
    v2 = [{"name": "image", "datatype": "BYTES", "shape": [1], "data": [encoded]}]
    return {"sample_input": [encoded], "response_schema": schema, "invalid": invalid, "v2": v2}


def _every_task() -> list[InvalidCase]:
    return [
        InvalidCase(name="malformed-json", body='["unclosed'),
        InvalidCase(name="empty-list", body="[]", status=422),
    ]


def _json(value: Any) -> str:
    import json

    return json.dumps(value)
