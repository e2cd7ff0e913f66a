"""What a tabular model takes beyond the rows it was trained on, tried at registration: a missing
value in each column, and a category it never saw in each string column.

The answer goes into the input schema (``model.yaml``'s features), so the server checks a
request before it is batched rather than letting the model fail on it, which would fail every
request batched with it:

* ``missing: true`` where the original model answers rows with the column missing AND the
  converted graph answers them alike.  Missing is NaN for a number (as pandas has it: an imputer,
  XGBoost and LightGBM natively); for a string, the marker of the column's imputer (skl2onnx
  converts only string markers there), else NaN to the original and an empty string to the
  graph.  The marker is recorded (``missing_as``): the server sends it to the graph for ``null``.
  Elsewhere ``null`` is a 422 saying "missing value".
* ``unseen: refuse`` where the original or the graph fails on a category outside the recorded
  ones (scikit-learn's default ``OneHotEncoder(handle_unknown="error")``): such a request is a
  422 naming the column, the value and some of the known categories.

Each probe runs a few rows of the gate's own rows, with one column changed, through both models.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from conveyor.convert.gate import check_conversion
from conveyor.serving.spec import Feature

PROBE_ROWS = 20
UNSEEN = "\u2063conveyor-unseen-category"  # a category no training data holds
Scores = Callable[[Any], np.ndarray]  # a frame of rows -> their score rows
Served = Callable[[list[Feature], Any], np.ndarray]  # the graph, served with these features, on a frame


def probe_features(
    features: list[Feature],
    frame: Any,
    original: Scores,
    served: Served,
    task: str,
    agreement: float,
    tolerance: float,
    markers: dict[str, list[str]] | None = None,
) -> list[Feature]:
    """The features with ``missing``, ``missing_as`` and ``unseen`` decided by trying both models.

    ``markers``: per string column, the strings its imputer takes as missing (tried before ``""``)."""
    complete = frame.dropna()
    rows = (complete if len(complete) else frame).head(PROBE_ROWS).reset_index(drop=True)
    decided = list(features)
    for index, feature in enumerate(features):
        update: dict[str, Any] = {}
        with_nan = rows.copy()
        with_nan[feature.name] = np.nan
        # what a missing value is to the original: its imputer's marker where it has one, else NaN
        imputed = (markers or {}).get(feature.name, []) if feature.type == "string" else []
        candidates: list[str | None] = [*imputed, ""] if feature.type == "string" else [None]
        for marker in candidates:
            seen_by_original = with_nan
            if marker in imputed:
                seen_by_original = rows.copy()
                seen_by_original[feature.name] = marker
            expected = _answers(original, seen_by_original)
            if expected is None:
                continue
            trial = feature.model_copy(update={"missing": True, "missing_as": marker})
            got = _answers(lambda f, t=trial, i=index: served(_replaced(decided, i, t), f), with_nan)  # type: ignore[misc]
            if got is not None and check_conversion(task, expected, got, "probe", agreement, tolerance).passed:
                update.update(missing=True, missing_as=marker)
                break
        if feature.type == "string" and feature.values and UNSEEN not in feature.values:
            with_unseen = rows.copy()
            with_unseen[feature.name] = UNSEEN
            fails = (
                _answers(original, with_unseen) is None or _answers(lambda f: served(decided, f), with_unseen) is None
            )
            update["unseen"] = "refuse" if fails else "accept"
        if update:
            decided[index] = feature.model_copy(update=update)
    return decided


def _replaced(features: list[Feature], index: int, feature: Feature) -> list[Feature]:
    return [*features[:index], feature, *features[index + 1 :]]


def _answers(scores: Scores, frame: Any) -> np.ndarray | None:
    """The model's finite score rows, or None where it fails on them (any error: the probe's answer)."""
    try:
        found = np.asarray(scores(frame), dtype=np.float64)
    except Exception:
        return None
    return found if np.isfinite(found).all() else None


__all__ = ["probe_features"]
