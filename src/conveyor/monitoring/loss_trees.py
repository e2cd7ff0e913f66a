"""DLE's gradient-boosted trees as plain numbers, and their prediction in numpy.

Direct loss estimation (``monitoring/estimate.py``) learns, on the labelled reference, two
scikit-learn ``HistGradientBoostingRegressor`` models (Poisson loss) of a regressor's absolute and
squared error.  Fitting them takes about a second and importing scikit-learn about 75 MB, on every
call that judged a regressor's window.  So the fitted trees are kept with the profile, node by
node (feature, threshold, which side a missing value takes, children, leaf values, the bitsets of
categorical splits), and a window is estimated by walking them with numpy: every row descends
every tree at once, a level per step (arrays padded to the largest tree), and the sum of the
leaves plus the baseline goes through the Poisson link (``exp``), as scikit-learn's ``predict``
does.  The model's own preprocessing is
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
    forest = {name: array.reshape(-1) if name != "bitsets" else array for name, array in _forest(stored).items()}
    count = len(stored["trees"])
    width = len(forest["value"]) // count
    base = (np.arange(count) * width)[None, :]  # each tree's first node in the flattened arrays
    cells = (np.arange(len(x)) * x.shape[1])[:, None]  # each row's first value in x, flattened
    flat_x = np.ascontiguousarray(x).reshape(-1)
    at = np.broadcast_to(base, (len(x), count)).copy()  # every row in every tree, one level per step
    while True:
        inner = ~forest["is_leaf"].take(at)
        if not inner.any():
            break
        value = flat_x.take(cells + forest["feature_idx"].take(at))
        missing = np.isnan(value)
        with np.errstate(invalid="ignore"):
            go_left = np.where(
                missing, forest["missing_go_to_left"].take(at), value <= forest["num_threshold"].take(at)
            )
        split = forest["is_categorical"].take(at) & ~missing
        if split.any():
            which = np.broadcast_to(np.arange(count)[None, :], at.shape)[split]
            codes = value[split].astype(np.int64)
            words = forest["bitsets"][which, forest["bitset_idx"].take(at)[split], codes >> 5]
            go_left[split] = ((words >> (codes & 31).astype(np.uint32)) & 1).astype(bool)
        following = base + np.where(go_left, forest["left"].take(at), forest["right"].take(at))
        at = np.where(inner, following, at)
    leaves = forest["value"].take(at)
    raw = np.full(len(x), stored["baseline"], dtype=np.float64)
    for tree in range(count):  # summed tree by tree, as scikit-learn sums them
        raw += leaves[:, tree]
    return np.exp(raw)


def _forest(stored: dict[str, Any]) -> dict[str, np.ndarray]:
    """The stored trees as arrays [tree, node] (shorter trees padded with leaves), and their
    categorical bitsets as [tree, bitset, word]."""
    trees = stored["trees"]
    width = max(len(tree["value"]) for tree in trees)
    kinds = {"value": np.float64, "num_threshold": np.float64, "missing_go_to_left": bool, "is_leaf": bool}
    kinds |= {"is_categorical": bool}
    forest: dict[str, np.ndarray] = {}
    for name in FIELDS:
        kind = kinds.get(name, np.int64)
        array = np.ones((len(trees), width), dtype=kind) if name == "is_leaf" else np.zeros((len(trees), width), kind)
        for index, tree in enumerate(trees):
            array[index, : len(tree[name])] = tree[name]
        forest[name] = array
    sets = max(max((len(tree["bitsets"]) for tree in trees), default=0), 1)
    bitsets = np.zeros((len(trees), sets, 8), dtype=np.uint32)
    for index, tree in enumerate(trees):
        if tree["bitsets"]:
            bitsets[index, : len(tree["bitsets"])] = np.asarray(tree["bitsets"], dtype=np.uint32).reshape(-1, 8)
    forest["bitsets"] = bitsets
    return forest
