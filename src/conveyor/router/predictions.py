"""Read the predictions out of a model server's answer, for the label shares and mirrored comparisons.

A classifier's answer is reduced to its label (``positive=true`` for the text task's
``{"positive": true}``, ``label="yes"`` for a tabular or image answer, whose probabilities
are left out so that two versions agreeing on the label agree), a regressor's to its value.
Labels are counted and compared exactly; values are compared within a tolerance, since a
retrained regressor never answers the same float.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import orjson

MAX_PARSED_BYTES = 1_000_000
UNPARSEABLE = "unparseable"


@dataclass(frozen=True)
class Predictions:
    """One answer's predictions: labels (classifiers) or values (regressors), one per item of a batch."""

    labels: list[str] | None = None
    values: list[float] | None = None


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _label(value: Any) -> str:
    if isinstance(value, dict):
        if "label" in value:
            return f"label={orjson.dumps(value['label']).decode()}"
        return ",".join(f"{key}={orjson.dumps(value[key]).decode()}" for key in sorted(value))
    return f"value={orjson.dumps(value).decode()}"


def _from_items(items: list[Any]) -> Predictions:
    if items and all(isinstance(i, dict) and set(i) == {"value"} and _number(i["value"]) for i in items):
        return Predictions(values=[float(i["value"]) for i in items])
    return Predictions(labels=[_label(item) for item in items])


def read_predictions(path: str, body: bytes) -> Predictions | None:
    """The predictions in an answer to ``/predict`` or v2 ``/infer``; None when the answer has none we know.

    The JSON value of a label is kept exactly, so ``{"positive": "false"}`` reads
    ``positive="false"``, which never agrees with ``positive=false``.
    """
    if len(body) > MAX_PARSED_BYTES:
        return None
    try:
        if path.endswith("/infer"):
            outputs = {o.get("name"): o.get("data", []) for o in orjson.loads(body).get("outputs", [])}
            if "label" in outputs:
                return Predictions(labels=[f"label={orjson.dumps(v).decode()}" for v in outputs["label"]])
            if "value" in outputs and all(_number(v) for v in outputs["value"]):
                return Predictions(values=[float(v) for v in outputs["value"]])
            return None
        if path.endswith("/predict"):
            document = orjson.loads(body)
            return _from_items(document if isinstance(document, list) else [document])
    except (orjson.JSONDecodeError, AttributeError, TypeError):
        return Predictions(labels=[UNPARSEABLE])
    return None


def values_agree(canary: list[float], stable: list[float], relative: float, absolute: float) -> bool:
    """Every value within ``absolute``, or ``relative`` x the larger of the two, of stable's (``math.isclose``)."""
    return len(canary) == len(stable) and all(
        math.isclose(c, s, rel_tol=relative, abs_tol=absolute) for c, s in zip(canary, stable, strict=True)
    )


def agree(canary: Predictions, stable: Predictions, relative: float, absolute: float) -> bool:
    """Whether a mirrored answer agrees with stable's: the same labels, or values within the tolerance."""
    if canary.labels is not None and stable.labels is not None:
        return canary.labels == stable.labels
    if canary.values is not None and stable.values is not None:
        return values_agree(canary.values, stable.values, relative, absolute)
    return False
