"""Tabular models: named, typed columns in; labels with probabilities, or values, out.

A tabular model's ``model.yaml`` lists its features (name and type, in the order the model
takes them).  Requests are checked against that schema before anything runs (before the batcher,
so one bad row never fails another request's): a missing, extra or mistyped column is a 422
naming the column and the row; so is a missing value (``null``, or NaN in a binary v2 tensor)
where the model takes none, and a category the model was not trained on where it fails on one
(``unseen: refuse``, recorded at registration).  A missing value the model takes reaches it as
the model expects one: NaN in a number column, the imputer's marker in a string column.  Three request shapes are taken,
the ones data tools write: JSON records (``[{"age": 39, ...}]``, or one record), the pandas
"split" orientation MLflow uses (``{"columns": [...], "data": [[...]]}``), MLflow's own
wrappers of both (``dataframe_records`` / ``dataframe_split``), so a client written for an
MLflow server works unchanged, and KServe's v1 ``{"instances": [...]}`` (records, or lists of
values in the features' order).

The ONNX graph takes its inputs one of two ways, found when the model loads: one input per
column, named after it (skl2onnx's ColumnTransformer pipelines, MLServer's pandas codec), or
one float matrix ``[N, features]`` (XGBoost and LightGBM converted by onnxmltools), fed in the
spec's feature order.  Either way the server answers from one float output: the class
probabilities of a classifier (the label is their argmax, as the frameworks' own ``predict``),
or the value of a regressor.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from conveyor.errors import InvalidInput, ModelLoadError
from conveyor.serving.model import check_classes
from conveyor.serving.runtime import GraphFailed, OnnxSession, RuntimeOptions, TensorInfo, short_reason
from conveyor.serving.spec import Feature, ModelSpec, ResolvedModel
from conveyor.tracing import phase

PROBABILITY_NAMES = ("probabilities", "output_probability", "probability", "proba")
VALUE_NAMES = ("variable", "predictions", "value", "output", "target")
FLOAT32_MAX = 3.4028234e38  # converted models compute in float32: larger numbers are refused
ACCEPTED = (
    "expected JSON records ([{column: value, ...}] or one record), {'columns': [...], 'data': [[...]]}, "
    "MLflow's {'dataframe_records': ...} or {'dataframe_split': ...}, or {'instances': [records, or lists of "
    "values in the features' order]}"
)
SHOWN_CATEGORIES = 8  # a refused category's message lists this many of the known ones
_JSON_KIND = {"dict": "object", "list": "array", "str": "string", "int": "integer", "float": "number"}


def _kind(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    return _JSON_KIND.get(type(value).__name__, type(value).__name__)


def _fits(feature: Feature, value: object) -> bool:
    if feature.type == "string":
        return isinstance(value, str)
    if feature.type == "boolean":
        return isinstance(value, bool)
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    if isinstance(value, float) and not math.isfinite(value):
        return False
    if abs(value) > FLOAT32_MAX:
        return False
    return feature.type == "number" or float(value).is_integer()


def _absent(value: object) -> bool:
    """A missing value: JSON null, or NaN (pandas' and the binary v2 tensors' missing number)."""
    return value is None or (isinstance(value, float) and math.isnan(value))


def _check_value(feature: Feature, value: object, row: int) -> None:
    if _absent(value):
        if feature.missing:
            return
        shown = "null" if value is None else "NaN"
        raise InvalidInput(
            f"row {row}: column {feature.name!r} has a missing value ({shown}), which the model does not take "
            f"there: send {_article(feature.type)}"
        )
    if not _fits(feature, value):
        shown = repr(value) if isinstance(value, str | int | float) else _kind(value)
        raise InvalidInput(f"row {row}: column {feature.name!r} must be {_article(feature.type)}, got {shown}")
    if feature.unseen == "refuse" and feature.values and value not in feature.values:
        raise InvalidInput(unseen_message(feature, value, row))


def unseen_message(feature: Feature, value: object, row: int) -> str:
    """A category the model was not trained on, where it fails on one: the value and a few it knows."""
    known = feature.values or []
    shown = ", ".join(repr(v) for v in known[:SHOWN_CATEGORIES])
    more = f" and {len(known) - SHOWN_CATEGORIES} more" if len(known) > SHOWN_CATEGORIES else ""
    return (
        f"row {row}: column {feature.name!r} has {value!r}, a category the model was not trained on; "
        f"it knows {shown}{more}"
    )


def _article(kind: str) -> str:
    return {
        "integer": "an integer within +-3.4e38",
        "number": "a finite number within +-3.4e38",
        "string": "a string",
        "boolean": "a boolean",
    }[kind]


def _check_columns(spec: ModelSpec, given: list[str], row: int | None) -> None:
    where = "" if row is None else f"row {row}: "
    expected = [f.name for f in spec.features]
    missing = [name for name in expected if name not in given]
    extra = [name for name in given if name not in expected]
    if missing:
        raise InvalidInput(f"{where}missing column(s) {missing}; the model takes {expected}")
    if extra:
        raise InvalidInput(f"{where}unknown column(s) {extra}; the model takes {expected}")
    if len(set(given)) != len(given):
        raise InvalidInput(f"{where}a column is named twice in {given}")


def parse_rows(payload: Any, spec: ModelSpec, max_items: int) -> dict[str, list[Any]]:
    """The request's rows as columns (feature name -> values), every value checked against its type."""
    if isinstance(payload, dict) and len(payload) == 1:
        ((key, inner),) = payload.items()
        if key == "dataframe_records":
            payload = inner if isinstance(inner, list) else payload
        elif key == "dataframe_split":
            payload = inner if isinstance(inner, dict) else payload
        elif key == "instances" and isinstance(inner, list) and key not in _names(spec):
            if inner and all(isinstance(instance, list) for instance in inner):  # values in the features' order
                payload = {"columns": _names(spec), "data": inner}
            else:
                payload = inner
    if isinstance(payload, dict) and "columns" in payload and "data" in payload:
        return _from_split(payload, spec, max_items)
    if isinstance(payload, dict):
        if payload and not set(payload) & set(_names(spec)):
            raise InvalidInput(f"none of the fields {sorted(payload)[:5]} is a column of the model: {ACCEPTED}")
        payload = [payload]  # one record
    if not isinstance(payload, list):
        raise InvalidInput(f"{ACCEPTED}; got {_kind(payload)}")
    _check_count(len(payload), max_items)
    columns: dict[str, list[Any]] = {f.name: [] for f in spec.features}
    for row, record in enumerate(payload):
        if not isinstance(record, dict):
            raise InvalidInput(f"row {row} must be an object of column: value, got {_kind(record)}")
        _check_columns(spec, list(record), row)
        for feature in spec.features:
            value = record[feature.name]
            _check_value(feature, value, row)
            columns[feature.name].append(value)
    return columns


def _names(spec: ModelSpec) -> list[str]:
    return [f.name for f in spec.features]


def _from_split(payload: dict[str, Any], spec: ModelSpec, max_items: int) -> dict[str, list[Any]]:
    names, data = payload["columns"], payload["data"]
    unknown_keys = sorted(set(payload) - {"columns", "data", "index"})
    if unknown_keys:
        raise InvalidInput(f"unknown field(s) {unknown_keys} in a split frame: it has columns, data and index")
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise InvalidInput("'columns' must be a list of column names")
    if not isinstance(data, list):
        raise InvalidInput(f"'data' must be a list of rows, got {_kind(data)}")
    index = payload.get("index")
    if index is not None and (
        not isinstance(index, list)
        or not all(isinstance(i, int | float | str) and not isinstance(i, bool) for i in index)
    ):
        raise InvalidInput("'index' must be a list of row labels (numbers or strings)")
    _check_columns(spec, names, None)
    _check_count(len(data), max_items)
    by_name = {f.name: f for f in spec.features}
    columns: dict[str, list[Any]] = {f.name: [] for f in spec.features}
    for row, values in enumerate(data):
        if not isinstance(values, list) or len(values) != len(names):
            raise InvalidInput(f"row {row} of 'data' must be a list of {len(names)} values, one per column")
        for name, value in zip(names, values, strict=True):
            _check_value(by_name[name], value, row)
            columns[name].append(value)
    return columns


def _check_count(count: int, max_items: int) -> None:
    from conveyor.errors import PayloadTooLarge

    if count == 0:
        raise InvalidInput("no rows given: send at least one")
    if count > max_items:
        raise PayloadTooLarge(f"too many rows: {count} > the limit of {max_items}")


def rows_of(columns: dict[str, list[Any]]) -> list[dict[str, Any]]:
    """Columns back to one record per row (the batcher's items: rows of several requests run together)."""
    names = list(columns)
    return [dict(zip(names, values, strict=True)) for values in zip(*columns.values(), strict=True)]


class TabularModel:
    """An ONNX session for a tabular model, fed from checked columns.  Thread-safe."""

    def __init__(self, resolved: ResolvedModel, options: RuntimeOptions) -> None:
        self.spec = resolved.spec
        self.session = OnnxSession(resolved.model_path, options)
        inputs = {info.name: info for info in self.session.inputs}
        names = [f.name for f in self.spec.features]
        if set(inputs) == set(names):
            self.matrix: TensorInfo | None = None
            self.inputs = inputs
        elif len(inputs) == 1 and self._width(next(iter(inputs.values()))) in (None, len(names)):
            self.matrix = next(iter(inputs.values()))
            self.inputs = {}
            wrong = [f.name for f in self.spec.features if f.type == "string"]
            if wrong:
                raise ModelLoadError(f"the model takes one numeric matrix, but features {wrong} are strings")
        else:
            raise ModelLoadError(
                f"the graph's inputs {sorted(inputs)} are neither the features {names} nor one matrix of "
                f"{len(names)} columns"
            )
        self.output = self._pick_output()

    @staticmethod
    def _width(info: TensorInfo) -> int | None:
        return info.shape[-1] if len(info.shape) == 2 else -1

    def _pick_output(self) -> TensorInfo:
        floats = [o for o in self.session.outputs if o.dtype.kind == "f"]
        preferred = VALUE_NAMES if self.spec.task.regression else PROBABILITY_NAMES
        chosen = next((o for o in floats if o.name in preferred), floats[-1] if floats else None)
        if chosen is None:
            raise ModelLoadError(f"the graph has no float output; outputs: {[o.name for o in self.session.outputs]}")
        if not self.spec.task.regression:
            check_classes(chosen, self.spec.labels)
        return chosen

    def feeds(self, columns: dict[str, list[Any]]) -> dict[str, np.ndarray]:
        if self.matrix is not None:
            with np.errstate(over="ignore"):
                matrix = np.array([columns[f.name] for f in self.spec.features], dtype=self.matrix.dtype).T
            if matrix.dtype.kind == "f":
                _check_floats(matrix, self.spec.features)
            return {self.matrix.name: np.ascontiguousarray(matrix)}
        feeds = {}
        for feature in self.spec.features:
            info = self.inputs[feature.name]
            values = columns[feature.name]
            if info.dtype.kind in "OUS":
                marker = feature.missing_as
                if feature.missing and marker is not None:
                    values = [marker if _absent(v) else v for v in values]
                elif any(_absent(v) for v in values):
                    row = next(i for i, v in enumerate(values) if _absent(v))
                    _check_value(feature.model_copy(update={"missing": False}), values[row], row)
                array = np.array(values, dtype=object).reshape(-1, 1)
            else:
                with np.errstate(over="ignore"):
                    array = np.array(values, dtype=info.dtype).reshape(-1, 1)
                if array.dtype.kind == "f":
                    _check_floats(array, [feature])
            feeds[feature.name] = array
        return feeds

    def score_columns(self, columns: dict[str, list[Any]]) -> np.ndarray:
        """``[N, labels]`` probabilities, or ``[N, 1]`` values."""
        count = len(next(iter(columns.values())))
        with phase("prepare"):
            feeds = self.feeds(columns)
        with phase("inference"):
            try:
                out = self.session.run(feeds, [self.output.name])[self.output.name]
            except GraphFailed as exc:  # it warmed up: the values failed it (a category an encoder refuses)
                raise InvalidInput(f"the model failed on these values: {short_reason(exc)}") from None
        scores = np.asarray(out, dtype=np.float64).reshape(count, -1)
        if not np.isfinite(scores).all():
            row = int(np.argwhere(~np.isfinite(scores))[0][0])
            raise InvalidInput(
                f"row {row}: the model's answer is not a finite number for these values (far outside what it "
                "was trained on)"
            )
        return scores

    def score(self, records: list[dict[str, Any]]) -> np.ndarray:
        """The batcher's function: records (of one or several requests) to their score rows."""
        columns = {f.name: [r[f.name] for r in records] for f in self.spec.features}
        return self.score_columns(columns)

    def warm_up_columns(self) -> dict[str, list[Any]]:
        example: dict[str, Any] = {"number": 0.0, "integer": 0, "string": "", "boolean": False}
        return {f.name: [(f.values or [example[f.type]])[0]] for f in self.spec.features}


def _check_floats(array: np.ndarray, features: list[Feature]) -> None:
    """Refuse a number the model cannot compute with: beyond the dtype's range, or missing where it takes none."""
    nan = np.isnan(array)
    allowed = np.array([f.missing for f in features])
    bad = np.isinf(array) | (nan & ~allowed)
    if not bad.any():
        return
    row, column = (int(i) for i in np.argwhere(bad)[0])
    feature = features[column]
    if nan[row, column]:
        _check_value(feature, float("nan"), row)
    raise InvalidInput(
        f"row {row}: column {feature.name!r} is outside the range of {array.dtype.name}, which the model computes in"
    )


def answers(spec: ModelSpec, scores: np.ndarray) -> list[dict[str, Any]]:
    """The classic answer per row: label and probabilities (or a boolean), or the value."""
    if spec.task.regression:
        return [{"value": float(v)} for v in scores[:, 0]]
    labels = spec.labels
    boolean = spec.boolean_label
    out = []
    for row in scores:
        winner = labels[int(row.argmax())]
        answer: dict[str, Any] = {boolean: winner == boolean} if boolean else {}
        answer["label"] = winner
        answer["probabilities"] = {label: round(float(p), 6) for label, p in zip(labels, row, strict=True)}
        out.append(answer)
    return out


def v2_datatype(feature: Feature) -> str:
    return {"number": "FP64", "integer": "INT64", "string": "BYTES", "boolean": "BOOL"}[feature.type]


def columns_from_tensors(spec: ModelSpec, tensors: dict[str, np.ndarray], max_items: int) -> dict[str, list[Any]]:
    """v2 inputs, one named input per column (MLServer's pandas codec), as checked columns."""
    _check_columns(spec, list(tensors), None)
    columns: dict[str, list[Any]] = {}
    count: int | None = None
    for feature in spec.features:
        array = tensors[feature.name]
        values = array.reshape(-1).tolist()
        if array.ndim > 2 or (array.ndim == 2 and array.shape[1] != 1):
            raise InvalidInput(f"input {feature.name!r}: expected shape [N] or [N, 1], got {list(array.shape)}")
        if count is not None and len(values) != count:
            raise InvalidInput(f"input {feature.name!r} has {len(values)} rows, the others {count}")
        count = len(values)
        values = [_text(v, feature.name, row) if isinstance(v, bytes) else v for row, v in enumerate(values)]
        for row, value in enumerate(values):
            _check_value(feature, value, row)
        columns[feature.name] = values
    _check_count(count or 0, max_items)
    return columns


def _text(value: bytes, name: str, row: int) -> str:
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidInput(f"input {name!r} row {row}: not UTF-8 text (send strings UTF-8 encoded)") from None


__all__ = ["TabularModel", "answers", "columns_from_tensors", "parse_rows", "rows_of", "v2_datatype"]
