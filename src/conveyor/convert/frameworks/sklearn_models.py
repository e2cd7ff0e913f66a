"""scikit-learn estimators and Pipelines (joblib or pickle files), via skl2onnx.

A Pipeline that starts with a ColumnTransformer selects its columns by name, so its graph takes
one input per column, named after it, strings as strings (one-hot encoders included).  Other
estimators take one float matrix.  A Pipeline ending in an XGBoost or LightGBM model converts
too: their onnxmltools converters are registered with skl2onnx, as skl2onnx documents.
Classifiers convert without ZipMap, so probabilities come out as one tensor.

Numbers convert in float32 first (``PRECISIONS``), as they always did; the gate asks for double
only where float32 changes the answers (a StandardScaler over large values such as timestamps
rounds them away, or a training row sits on a tree's split threshold).  skl2onnx's double graph
is repaired to run on onnxruntime and keep scikit-learn's thresholds
(:mod:`conveyor.convert.double_graph`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from conveyor.convert.frameworks import Loaded, version_of
from conveyor.extras import require
from conveyor.serving.spec import Feature

NAME = "scikit-learn"
ORDER = 30  # last: other frameworks' models can be estimators too
PRECISIONS = ("float32", "double")  # tried in this order; the first the gate passes is kept


def recognises(path: Path) -> bool:
    return False  # scikit-learn has no file format of its own: its models come as pickles


def sample_column(feature: str, columns: list[str]) -> str | None:
    return feature if feature in columns else None


def load(path: Path) -> Loaded | None:
    return None  # pickles are loaded once (converters/tabular.py) and offered to every framework


def accepts(model: Any) -> bool:
    try:
        from sklearn.base import BaseEstimator
    except ImportError:
        return False
    return isinstance(model, BaseEstimator)


def describe(model: Any) -> Loaded:
    from sklearn.base import is_classifier, is_regressor

    from conveyor.errors import InvalidInput

    if is_classifier(model) and not hasattr(model, "predict_proba"):  # the gate and the server answer probabilities
        raise InvalidInput(
            f"{type(model).__name__} ({type(_final(model)).__name__}) has no predict_proba, which the gate compares "
            "and the server answers: train it with probability=True where it takes that (SVC), or wrap it in "
            "sklearn.calibration.CalibratedClassifierCV(..., ensemble=False)"
        )
    if is_classifier(model):
        task, labels = "tabular-classification", [str(c) for c in model.classes_]
    elif is_regressor(model):
        task, labels = "tabular-regression", []
    else:
        raise InvalidInput(
            f"{type(model).__name__} is neither a classifier nor a regressor: register the whole Pipeline "
            "that ends in one"
        )
    names = getattr(model, "feature_names_in_", None)
    return Loaded(
        framework=NAME,
        framework_version=version_of("scikit-learn"),
        model=model,
        task=task,
        labels=labels,
        feature_names=[str(n) for n in names] if names is not None else None,
        n_features=int(getattr(model, "n_features_in_", 0)),
        converter=f"skl2onnx {version_of('skl2onnx')}",
    )


def _final(model: Any) -> Any:
    """A Pipeline's last estimator (the model itself otherwise)."""
    steps = getattr(model, "steps", None)
    return _final(steps[-1][1]) if isinstance(steps, list) and steps else model


def _column_transformer(model: Any) -> Any:
    from sklearn.compose import ColumnTransformer
    from sklearn.pipeline import Pipeline

    if isinstance(model, ColumnTransformer):
        return model
    if isinstance(model, Pipeline) and isinstance(model.steps[0][1], ColumnTransformer):
        return model.steps[0][1]
    return None


def _encoders(model: Any) -> list[tuple[Any, list[str]]]:
    """(fitted transformer, the columns it reads) of the model's ColumnTransformer."""
    transformer = _column_transformer(model)
    if transformer is None:
        return []
    found = []
    for _, fitted, columns in transformer.transformers_:
        if isinstance(columns, str):
            columns = [columns]
        if not isinstance(columns, list | tuple) or not all(isinstance(c, str) for c in columns):
            continue
        inner = fitted.steps[-1][1] if hasattr(fitted, "steps") else fitted
        found.append((inner, list(columns)))
    return found


def categories(loaded: Loaded) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for encoder, columns in _encoders(loaded.model):
        for column, values in zip(columns, getattr(encoder, "categories_", []), strict=False):
            if np.asarray(values).dtype.kind in "OUS":
                found[column] = [str(v) for v in values if isinstance(v, str)]
    return found


def missing_markers(loaded: Loaded) -> dict[str, list[str]]:
    """Per string column, the string its imputer takes as missing (skl2onnx converts only string markers there)."""
    found: dict[str, list[str]] = {}
    transformer = _column_transformer(loaded.model)
    for _, fitted, columns in transformer.transformers_ if transformer is not None else []:
        steps = [step for _, step in fitted.steps] if hasattr(fitted, "steps") else [fitted]
        marker = next((getattr(s, "missing_values", None) for s in steps if hasattr(s, "statistics_")), None)
        if isinstance(marker, str) and isinstance(columns, list | tuple):
            for column in columns:
                found.setdefault(str(column), []).append(marker)
    return found


def feature_types(loaded: Loaded, features: list[str]) -> dict[str, str]:
    strings = categories(loaded)
    return {name: "string" if name in strings else "number" for name in features}


def ranges(loaded: Loaded) -> dict[str, tuple[float, float]]:
    """Scaler statistics where the model has them: mean +- 3 standard deviations."""
    found: dict[str, tuple[float, float]] = {}
    for scaler, columns in _encoders(loaded.model):
        means, scales = getattr(scaler, "mean_", None), getattr(scaler, "scale_", None)
        if means is None or scales is None:
            continue
        for column, mean, scale in zip(columns, means, scales, strict=False):
            found[column] = (float(mean - 3 * scale), float(mean + 3 * scale))
    return found


def _register_boosters() -> None:
    """XGBoost and LightGBM inside a Pipeline: their onnxmltools converters, registered with skl2onnx."""
    from skl2onnx import update_registered_converter
    from skl2onnx.common.shape_calculator import (
        calculate_linear_classifier_output_shapes,
        calculate_linear_regressor_output_shapes,
    )

    options = {"nocl": [True, False], "zipmap": [True, False, "columns"]}
    try:
        import xgboost
        from onnxmltools.convert.xgboost.operator_converters.XGBoost import convert_xgboost

        update_registered_converter(
            xgboost.XGBClassifier,
            "XGBoostXGBClassifier",
            calculate_linear_classifier_output_shapes,
            convert_xgboost,
            options=options,
        )
        update_registered_converter(
            xgboost.XGBRegressor, "XGBoostXGBRegressor", calculate_linear_regressor_output_shapes, convert_xgboost
        )
    except ImportError:
        pass
    try:
        import lightgbm
        from onnxmltools.convert.lightgbm.operator_converters.LightGbm import convert_lightgbm

        update_registered_converter(
            lightgbm.LGBMClassifier,
            "LightGbmLGBMClassifier",
            calculate_linear_classifier_output_shapes,
            convert_lightgbm,
            options=options,
        )
        update_registered_converter(
            lightgbm.LGBMRegressor,
            "LightGbmLGBMRegressor",
            calculate_linear_regressor_output_shapes,
            convert_lightgbm,
        )
    except ImportError:
        pass  # fmt: skip


def to_onnx(loaded: Loaded, features: list[Feature], precision: str = "float32") -> Any:
    skl2onnx = require("skl2onnx", extra="sklearn", for_="converting this model")
    types = require("skl2onnx.common.data_types", extra="sklearn", for_="converting this model")
    _register_boosters()
    model = loaded.model
    number = types.DoubleTensorType if precision == "double" else types.FloatTensorType
    if _column_transformer(model) is not None:
        tensor = {"string": types.StringTensorType, "integer": types.Int64TensorType}
        initial = [(f.name, tensor.get(f.type, number)([None, 1])) for f in features]
    else:
        initial = [("input", number([None, len(features)]))]
    options = {id(model): {"zipmap": False}} if loaded.task == "tabular-classification" else None
    proto = skl2onnx.convert_sklearn(model, initial_types=initial, options=options)
    if precision != "double":
        return proto
    from conveyor.convert.double_graph import to_double

    return to_double(proto, model)


def predict(loaded: Loaded, frame: Any) -> np.ndarray:
    data = frame if loaded.feature_names or _column_transformer(loaded.model) is not None else frame.to_numpy()
    if loaded.task == "tabular-classification":
        return np.asarray(loaded.model.predict_proba(data), dtype=np.float64)
    return np.asarray(loaded.model.predict(data), dtype=np.float64).reshape(-1, 1)
