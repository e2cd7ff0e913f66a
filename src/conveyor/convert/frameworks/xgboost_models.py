"""XGBoost: native model files (``.json``, ``.ubj``) and the sklearn wrappers, via onnxmltools.

A native file does not say whether it classifies: its objective does (``binary:``, ``multi:``
are classifiers), so it is loaded into the matching sklearn wrapper with ``load_model``, the
way XGBoost documents.  onnxmltools wants features named ``f0, f1, ...`` and a split threshold
on every node; a copy of the model loses its names and feature types before conversion (a
pandas bool column is an indicator feature, whose nodes XGBoost dumps without a threshold;
the tree compares it with one all the same), and the served schema keeps them.  The graph
takes one float matrix, in the model's feature order."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import numpy as np

from conveyor.convert.frameworks import Loaded, version_of
from conveyor.extras import require
from conveyor.serving.spec import Feature

NAME = "xgboost"
ORDER = 10  # before scikit-learn: its wrappers are estimators too
SUFFIXES = (".json", ".ubj")


def recognises(path: Path) -> bool:
    if path.suffix == ".ubj":
        return True
    with open(path, "rb") as handle:
        return path.suffix == ".json" and b'"learner"' in handle.read(4096)


def sample_column(feature: str, columns: list[str]) -> str | None:
    return feature if feature in columns else None


def load(path: Path) -> Loaded | None:
    if path.suffix not in SUFFIXES:
        return None
    if path.suffix == ".json":
        try:
            head = json.loads(path.read_text())
        except (ValueError, UnicodeDecodeError):
            return None
        if not isinstance(head, dict) or "learner" not in head:
            return None
    xgboost = require("xgboost", extra="xgboost", for_="converting this model")
    booster = xgboost.Booster()
    booster.load_model(str(path))
    objective = json.loads(booster.save_config())["learner"]["objective"]["name"]
    wrapper = xgboost.XGBClassifier() if objective.startswith(("binary:", "multi:")) else xgboost.XGBRegressor()
    wrapper.load_model(str(path))
    return describe(wrapper)


def accepts(model: Any) -> bool:
    try:
        import xgboost
    except ImportError:
        return False
    return isinstance(model, xgboost.XGBModel)


def describe(model: Any) -> Loaded:
    import xgboost

    classifier = isinstance(model, xgboost.XGBClassifier)
    names = model.get_booster().feature_names
    return Loaded(
        framework=NAME,
        framework_version=version_of("xgboost"),
        model=model,
        task="tabular-classification" if classifier else "tabular-regression",
        labels=[str(c) for c in model.classes_] if classifier else [],
        feature_names=list(names) if names else None,
        n_features=model.get_booster().num_features(),
        converter=f"onnxmltools {version_of('onnxmltools')}",
    )


def feature_types(loaded: Loaded, features: list[str]) -> dict[str, str]:
    kinds = loaded.model.get_booster().feature_types or ["float"] * len(features)
    return {name: "boolean" if kind == "i" else "number" for name, kind in zip(features, kinds, strict=True)}


def categories(loaded: Loaded) -> dict[str, list[str]]:
    return {}


def ranges(loaded: Loaded) -> dict[str, tuple[float, float]]:
    """The split thresholds of every tree, per feature: the values where the model changes its mind."""
    booster = loaded.model.get_booster()
    names = booster.feature_names or [f"f{i}" for i in range(booster.num_features())]
    found: dict[str, list[float]] = {}
    for tree in _plain(loaded.model).get_booster().get_dump(dump_format="json"):
        stack = [json.loads(tree)]
        while stack:
            node = stack.pop()
            if "split" in node:
                key = node["split"]
                index = int(key[1:]) if key not in names and key[1:].isdigit() else names.index(key)
                found.setdefault(names[index], []).append(float(node["split_condition"]))
                stack.extend(node.get("children", []))
    return {name: (min(values), max(values)) for name, values in found.items()}


def to_onnx(loaded: Loaded, features: list[Feature]) -> Any:
    convert = require("onnxmltools.convert", extra="xgboost", for_="converting this model")
    types = require("onnxmltools.convert.common.data_types", extra="xgboost", for_="converting this model")
    plain = _plain(loaded.model)
    return convert.convert_xgboost(plain, initial_types=[("input", types.FloatTensorType([None, len(features)]))])


def _plain(model: Any) -> Any:
    """A copy without feature names (onnxmltools reads features as f0, f1, ...) or types (every
    node dumped with its threshold, an indicator's included)."""
    plain = copy.deepcopy(model)
    plain.get_booster().feature_names = None
    plain.get_booster().feature_types = None
    return plain


def predict(loaded: Loaded, frame: Any) -> np.ndarray:
    data = frame if loaded.feature_names else frame.to_numpy()
    if loaded.task == "tabular-classification":
        return np.asarray(loaded.model.predict_proba(data), dtype=np.float64)
    return np.asarray(loaded.model.predict(data), dtype=np.float64).reshape(-1, 1)
