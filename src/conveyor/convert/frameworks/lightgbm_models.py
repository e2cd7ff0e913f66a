"""LightGBM: native text models (``model.txt``) and the sklearn wrappers, via onnxmltools.

A native Booster records its objective (``binary``, ``multiclass``, ``regression``...) and the
ranges of its features; its feature names are LightGBM's (spaces become underscores), so a
sample whose columns match them once sanitised keeps the user's names.  The graph takes one
float matrix, in the model's feature order."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np

from conveyor.convert.frameworks import Loaded, version_of
from conveyor.errors import InvalidInput
from conveyor.extras import require
from conveyor.serving.spec import Feature

NAME = "lightgbm"
ORDER = 20  # before scikit-learn: its wrappers are estimators too
SUFFIXES = (".txt", ".lgb", ".lgbm")


def recognises(path: Path) -> bool:
    with open(path, "rb") as handle:
        return path.suffix in SUFFIXES and handle.read(5) == b"tree\n"


def load(path: Path) -> Loaded | None:
    if path.suffix not in SUFFIXES:
        return None
    with open(path, "rb") as handle:
        if not handle.read(64).startswith(b"tree\n"):
            return None
    lightgbm = require("lightgbm", extra="lightgbm", for_="converting this model")
    return describe(lightgbm.Booster(model_file=str(path)))


def accepts(model: Any) -> bool:
    try:
        import lightgbm
    except ImportError:
        return False
    return isinstance(model, lightgbm.LGBMModel | lightgbm.Booster)


def _booster(model: Any) -> Any:
    return model.booster_ if hasattr(model, "booster_") else model


def _objective(booster: Any) -> str:
    return str(booster.dump_model(num_iteration=0).get("objective", "regression")).split()[0]


def categorical_features(booster: Any) -> list[str]:
    """The features LightGBM split as categories (a pandas ``category`` column, or ``categorical_feature=``)."""
    infos = booster.dump_model(num_iteration=0).get("feature_infos", {})
    return [name for name, info in infos.items() if isinstance(info, dict) and info.get("values")]


def describe(model: Any) -> Loaded:
    booster = _booster(model)
    categorical = categorical_features(booster)
    if categorical:  # onnxmltools' graph takes one float matrix: no place for the category -> code mapping
        source = " (pandas category columns)" if getattr(booster, "pandas_categorical", None) else ""
        raise InvalidInput(
            f"this LightGBM model splits {categorical} as categorical features{source}, which Conveyor cannot "
            "convert to ONNX: train on numeric codes instead (an OrdinalEncoder in a scikit-learn Pipeline "
            "before the LGBM estimator, or frame[column].cat.codes) and register that model"
        )
    objective = _objective(booster)
    classifier = objective in ("binary", "multiclass", "multiclassova", "cross_entropy")
    if hasattr(model, "classes_"):
        labels = [str(c) for c in model.classes_]
    elif classifier:
        labels = [str(i) for i in range(max(2, booster.num_model_per_iteration()))]
    else:
        labels = []
    names = booster.feature_name()
    generic = all(re.fullmatch(r"Column_\d+", n) for n in names)
    return Loaded(
        framework=NAME,
        framework_version=version_of("lightgbm"),
        model=model,
        task="tabular-classification" if classifier else "tabular-regression",
        labels=labels,
        feature_names=None if generic else list(names),
        n_features=booster.num_feature(),
        converter=f"onnxmltools {version_of('onnxmltools')}",
    )


def sanitised(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_]", "_", name.replace(" ", "_"))


def sample_column(feature: str, columns: list[str]) -> str | None:
    """The column itself, or the one LightGBM renamed to ``feature`` (``petal width`` -> ``petal_width``)."""
    if feature in columns:
        return feature
    return next((c for c in columns if sanitised(c) == feature), None)


def feature_types(loaded: Loaded, features: list[str]) -> dict[str, str]:
    return {name: "number" for name in features}


def categories(loaded: Loaded) -> dict[str, list[str]]:
    return {}


def ranges(loaded: Loaded) -> dict[str, tuple[float, float]]:
    dumped = _booster(loaded.model).dump_model(num_iteration=0)
    found = {}
    for name, info in dumped.get("feature_infos", {}).items():
        low, high = info.get("min_value"), info.get("max_value")
        if isinstance(low, int | float) and isinstance(high, int | float):
            found[name] = (float(low), float(high))
    return found


def to_onnx(loaded: Loaded, features: list[Feature]) -> Any:
    convert = require("onnxmltools.convert", extra="lightgbm", for_="converting this model")
    types = require("onnxmltools.convert.common.data_types", extra="lightgbm", for_="converting this model")
    initial = [("input", types.FloatTensorType([None, len(features)]))]
    return convert.convert_lightgbm(_convertible(loaded.model), initial_types=initial, zipmap=False)


def _convertible(model: Any) -> Any:
    """The model onnxmltools can convert: a classifier whose classes are neither signed numbers nor
    strings (bool labels, ``fit(X, y_bool)``: onnxmltools takes them for strings and fails) as its
    booster, which numbers them 0..K-1 in the same order.  The graph's probabilities are all Conveyor
    serves; the labels stay the model's own (``Loaded.labels``: "False", "True", as scikit-learn's
    ``classes_`` name them and a scikit-learn classifier on bool labels is served)."""
    classes = getattr(model, "classes_", None)
    if classes is not None and np.asarray(classes).dtype.kind not in "ifUSO":
        return _booster(model)
    return model


def predict(loaded: Loaded, frame: Any) -> np.ndarray:
    data = frame.to_numpy(dtype=np.float64)
    model = loaded.model
    if hasattr(model, "predict_proba") and loaded.task == "tabular-classification":
        return np.asarray(model.predict_proba(data), dtype=np.float64)
    raw = np.asarray(model.predict(data), dtype=np.float64)
    if loaded.task == "tabular-classification" and raw.ndim == 1:  # a native binary Booster: P(class 1)
        return np.stack([1 - raw, raw], axis=1)
    return raw.reshape(len(data), -1)
