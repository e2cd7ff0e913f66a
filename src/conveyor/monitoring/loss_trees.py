"""DLE's gradient-boosted trees as plain numbers, and their prediction in numpy.

Direct loss estimation (``monitoring/estimate.py``) learns, on the labelled reference, two
scikit-learn ``HistGradientBoostingRegressor`` models (Poisson loss) of a regressor's absolute and
squared error.  Fitting them takes about a second and importing scikit-learn about 75 MB, on every
call that judged a regressor's window.  So the fitted trees are kept with the profile, node by
node (feature, threshold, which side a missing value takes, children, leaf values, the bitsets of
categorical splits), and a window is estimated by walking them with numpy: every row descends
one level per step, all trees in turn, and the sum of the leaves plus the baseline goes through
the Poisson link (``exp``), as scikit-learn's ``predict`` does.  The model's own preprocessing is
kept too (categorical columns first, each category coded by its place among those it saw); a
category it did not see goes the missing side.  ``tests/test_monitor_statistics.py`` holds the
prediction to scikit-learn's.
"""

from __future__ import annotations

from typing import Any

import numpy as np

#: what a node keeps (scikit-learn's predictor node fields that prediction reads)
FIELDS = (
    "value",
    "feature_idx",
    "num_threshold",
    "missing_go_to_left",
    "left",
    "right",
    "is_leaf",
    "is_categorical",
    "bitset_idx",
)


def trees_of(model: Any) -> dict[str, Any]:
    """A fitted single-output ``HistGradientBoostingRegressor`` (Poisson loss) as JSON-ready numbers."""
    trees = []
    for (predictor,) in model._predictors:
        nodes = predictor.nodes
        tree = {name: nodes[name].tolist() for name in FIELDS}
        tree["bitsets"] = predictor.raw_left_cat_bitsets.tolist()
        trees.append(tree)
    columns, categories = _encoding(model)
    baseline = float(np.ravel(model._baseline_prediction)[0])
    return {"baseline": baseline, "link": "log", "columns": columns, "categories": categories, "trees": trees}


def _encoding(model: Any) -> tuple[list[int] | None, list[list[float]]]:
    """How the model's preprocessing reorders and codes its input (None: it takes the columns as
    they are): the input columns in the order the trees see them, and per categorical column (they
    come first) its categories, each coded by its place in that list."""
    preprocessor = getattr(model, "_preprocessor", None)
    if preprocessor is None:
        return None, []
    columns: list[int] = []
    categories: list[list[float]] = []
    placed = sorted(preprocessor.transformers_, key=lambda t: preprocessor.output_indices_[t[0]].start)
    for _name, transformer, picked in placed:
        mask = np.asarray(picked)
        indexes = np.flatnonzero(mask) if mask.dtype == bool else mask.astype(np.int64)
        if not len(indexes) or isinstance(transformer, str):
            continue
        columns += indexes.tolist()
        if hasattr(transformer, "categories_"):
            categories += [[float(c) for c in found if not np.isnan(c)] for found in transformer.categories_]
    return columns, categories


def predict(stored: dict[str, Any], x: np.ndarray) -> np.ndarray:
    """What the stored model predicts for the rows of ``x`` (the matrix it was fitted on's columns)."""
    if stored.get("columns") is not None:  # as the model's preprocessing: categories first, coded
        x = x[:, stored["columns"]].copy()
        for column, known in enumerate(stored["categories"]):
            values, known_values = x[:, column], np.asarray(known, dtype=np.float64)
            place = np.clip(np.searchsorted(known_values, values), 0, max(len(known_values) - 1, 0))
            seen = (known_values[place] == values) if len(known_values) else np.zeros(len(values), dtype=bool)
            x[:, column] = np.where(seen, place, np.nan)
    rows = np.arange(len(x))
    raw = np.full(len(x), stored["baseline"], dtype=np.float64)
    for tree in stored["trees"]:
        leaf = np.asarray(tree["is_leaf"], dtype=bool)
        feature = np.asarray(tree["feature_idx"], dtype=np.int64)
        threshold = np.asarray(tree["num_threshold"], dtype=np.float64)
        missing_left = np.asarray(tree["missing_go_to_left"], dtype=bool)
        categorical = np.asarray(tree["is_categorical"], dtype=bool)
        bitset = np.asarray(tree["bitset_idx"], dtype=np.int64)
        bitsets = np.asarray(tree["bitsets"], dtype=np.uint32).reshape(-1, 8)
        left, right = np.asarray(tree["left"], dtype=np.int64), np.asarray(tree["right"], dtype=np.int64)
        node = np.zeros(len(x), dtype=np.int64)
        while True:
            inner = ~leaf[node]
            if not inner.any():
                break
            at = node[inner]
            value = x[rows[inner], feature[at]]
            missing = np.isnan(value)
            with np.errstate(invalid="ignore"):
                go_left = np.where(missing, missing_left[at], value <= threshold[at])
            split = categorical[at] & ~missing
            if split.any():
                codes = value[split].astype(np.int64)
                words = bitsets[bitset[at[split]], codes >> 5]
                go_left[split] = ((words >> (codes & 31).astype(np.uint32)) & 1).astype(bool)
            node[inner] = np.where(go_left, left[at], right[at])
        raw += np.asarray(tree["value"], dtype=np.float64)[node]
    return np.exp(raw)
