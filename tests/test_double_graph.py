"""skl2onnx's double graphs repaired to answer as scikit-learn does (conveyor.convert.double_graph):
the model's own double thresholds and imputed values, and imputers that onnxruntime runs in double."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

pytest.importorskip("skl2onnx")


def _double_session(model: Any, columns: int) -> Any:
    import onnxruntime as ort
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import DoubleTensorType

    from conveyor.convert.double_graph import to_double

    proto = convert_sklearn(model, initial_types=[("x", DoubleTensorType([None, columns]))])
    return ort.InferenceSession(to_double(proto, model).SerializeToString(), providers=["CPUExecutionProvider"])


def test_the_models_doubles_are_found_inside_pipelines_ensembles_and_imputers() -> None:
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import GradientBoostingRegressor, HistGradientBoostingRegressor, RandomForestRegressor
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline

    from conveyor.convert.double_graph import model_doubles

    x = np.random.default_rng(0).normal(0, 1, (300, 2))
    x[::9, 0] = np.nan
    y = np.nan_to_num(x[:, 0]) + x[:, 1]
    for estimator in (RandomForestRegressor(3, random_state=0), GradientBoostingRegressor(n_estimators=3),
                      HistGradientBoostingRegressor(max_iter=3)):  # fmt: skip
        prep = ColumnTransformer([("impute", SimpleImputer(strategy="median"), [0, 1])])
        model = Pipeline([("prep", prep), ("model", estimator)]).fit(x, y)
        doubles = model_doubles(model)
        median = float(np.nanmedian(x[:, 0]))
        assert doubles[float(np.float32(median))] == median  # the imputer's value, exactly
        assert len(doubles) > 3  # and the trees' thresholds


def test_a_training_row_on_a_split_threshold_and_a_marker_imputer_answer_as_scikit_learn() -> None:
    from sklearn.ensemble import HistGradientBoostingRegressor
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline

    random = np.random.default_rng(1)
    x = random.normal(50, 15, (400, 2))
    x[::7, 1] = -1.0  # the marker this imputer replaces (not NaN: the Equal branch)
    y = x[:, 0] * 2 + np.where(x[:, 1] < 0, 0, x[:, 1])
    model = Pipeline([("impute", SimpleImputer(missing_values=-1.0, strategy="median")),
                      ("model", HistGradientBoostingRegressor(max_iter=40))]).fit(x, y)  # fmt: skip
    answered = _double_session(model, 2).run(None, {"x": x})[0].ravel()
    np.testing.assert_allclose(answered, model.predict(x), rtol=1e-6, atol=1e-6)  # the training rows themselves
