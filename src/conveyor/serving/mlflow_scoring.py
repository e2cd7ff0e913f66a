"""``POST /invocations``: MLflow's scoring protocol, for clients written against ``mlflow models serve``.

MLflow's server takes a JSON object with one of ``dataframe_split`` (``{"columns", "data"}``),
``dataframe_records`` (a list of objects), ``instances`` or ``inputs`` (a list of rows, of objects,
or of strings for a text model; or an object of columns), and answers ``{"predictions": [...]}``:
a classifier's labels (numbers where the model's classes were numbers), a regressor's values.
This module only translates: the body becomes the task's own ``/predict`` items (checked by the
same code), the answers become MLflow's; the data plane scores them as it scores ``/predict``.
"""

from __future__ import annotations

from typing import Any

import orjson

from conveyor.errors import InvalidInput
from conveyor.serving.body import json_body
from conveyor.serving.spec import ModelSpec

PATH = "/invocations"
SHAPES = ("dataframe_split", "dataframe_records", "instances", "inputs")
EXPECTED = f"a JSON object with one of {', '.join(SHAPES)} (MLflow's scoring protocol)"


def predict_body(body: bytes, spec: ModelSpec) -> bytes:
    """MLflow's request as the JSON body ``/predict`` takes for SPEC's task."""
    payload = json_body(body, EXPECTED)
    if not isinstance(payload, dict):
        raise InvalidInput(f"expected {EXPECTED}; got a JSON {type(payload).__name__}")
    given = [key for key in SHAPES if key in payload]
    if len(given) != 1:
        raise InvalidInput(f"expected {EXPECTED}; got the keys {sorted(payload)}")
    (shape,) = given
    inner = payload[shape]
    records = _records(shape, inner, spec)
    if spec.task.takes_text:
        return orjson.dumps([_text_of(record, index) for index, record in enumerate(records)])
    return orjson.dumps(records)


def _records(shape: str, inner: Any, spec: ModelSpec) -> list[Any]:
    names = [f.name for f in spec.features]
    if shape == "dataframe_split":
        if not isinstance(inner, dict) or not isinstance(inner.get("data"), list):
            raise InvalidInput('dataframe_split is {"columns": [...], "data": [[...], ...]}')
        columns = inner.get("columns") or names or ["text"]
        return [dict(zip(columns, row, strict=False)) if isinstance(row, list) else row for row in inner["data"]]
    if isinstance(inner, dict):  # columns: {"name": [values]}
        lengths = {len(v) for v in inner.values() if isinstance(v, list)}
        if len(lengths) != 1 or len(inner) != sum(isinstance(v, list) for v in inner.values()):
            raise InvalidInput(f"{shape} as an object holds one list of values per column, all of one length")
        return [dict(zip(inner, values, strict=True)) for values in zip(*inner.values(), strict=True)]
    if not isinstance(inner, list):
        raise InvalidInput(f"{shape} must be a list of rows, got {type(inner).__name__}")
    if names and inner and all(isinstance(row, list) for row in inner):  # values in the features' order
        return [dict(zip(names, row, strict=False)) for row in inner]
    return inner


def _text_of(record: Any, index: int) -> Any:
    """A text model's item: the string itself, or the one value of a one-column row."""
    if isinstance(record, dict) and len(record) == 1:
        return next(iter(record.values()))
    if isinstance(record, list) and len(record) == 1:
        return record[0]
    if isinstance(record, dict | list):
        raise InvalidInput(f"row {index}: a text model takes one text per row, got {len(record)} values")
    return record


def predictions(answers: list[dict[str, Any]], spec: ModelSpec) -> bytes:
    """The classic answers as MLflow's ``{"predictions": [...]}``."""
    field = spec.task.answer_field
    numeric = bool(spec.labels) and all(_is_int(label) for label in spec.labels)
    found: list[Any] = []
    for answer in answers:
        if field in answer:
            value = answer[field]
            found.append(int(value) if numeric and isinstance(value, str) else value)
        elif len(answer) == 1:  # a text model with a boolean answer ({"positive": true})
            found.append(next(iter(answer.values())))
        else:
            found.append(answer)
    return orjson.dumps({"predictions": found})


def _is_int(text: str) -> bool:
    return text.lstrip("-").isdigit()
