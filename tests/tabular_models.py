"""Real tabular models for the tests, trained from data that ships with scikit-learn (no download).

* ``risk``: a ColumnTransformer Pipeline (scaled numbers, one-hot strings) on a mixed-type frame
  built from the bundled diabetes data: string labels "high" / "low";
* ``cancer-xgb`` / ``cancer-lgb``: XGBoost and LightGBM classifiers on the bundled breast-cancer
  data, saved in their native formats (features named, with spaces);
* ``area-xgb``: an XGBoost regressor (sklearn wrapper, joblib) predicting one column from the rest.

Small on purpose: each trains in well under a second.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class Trained:
    folder: Path
    risk: Path  # joblib Pipeline
    risk_sample: Path  # CSV
    cancer_xgb: Path  # native JSON
    cancer_lgb: Path  # native text
    cancer_sample: Path  # CSV
    area_xgb: Path  # joblib XGBRegressor


def risk_frame():  # type: ignore[no-untyped-def]
    import pandas as pd
    from sklearn.datasets import load_diabetes

    data = load_diabetes(as_frame=True).frame
    frame = pd.DataFrame(
        {
            "age": (data.age * 100 + 50).round(0),
            "bmi": data.bmi * 100 + 25,
            "bp": data.bp * 100 + 90,
            "sex": np.where(data.sex > 0, "male", "female"),
            "region": np.array(["north", "south", "east", "west"])[np.arange(len(data)) % 4],
        }
    )
    return frame, np.where(data.target > data.target.median(), "high", "low")


def train(folder: Path) -> Trained:
    import joblib
    import lightgbm
    import xgboost
    from sklearn.compose import ColumnTransformer
    from sklearn.datasets import load_breast_cancer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    folder.mkdir(parents=True, exist_ok=True)
    frame, labels = risk_frame()
    prep = ColumnTransformer(
        [
            ("num", StandardScaler(), ["age", "bmi", "bp"]),
            ("cat", OneHotEncoder(handle_unknown="ignore"), ["sex", "region"]),
        ]
    )
    pipeline = Pipeline([("prep", prep), ("clf", LogisticRegression(max_iter=500))]).fit(frame, labels)
    joblib.dump(pipeline, folder / "risk.joblib")
    frame.head(120).to_csv(folder / "risk.csv", index=False)

    cancer = load_breast_cancer(as_frame=True)
    x, y = cancer.data, cancer.target
    xgboost.XGBClassifier(n_estimators=25, max_depth=3).fit(x, y).save_model(folder / "cancer-xgb.json")
    lightgbm.LGBMClassifier(n_estimators=25, verbose=-1).fit(x, y).booster_.save_model(folder / "cancer-lgb.txt")
    x.head(150).to_csv(folder / "cancer.csv", index=False)
    regressor = xgboost.XGBRegressor(n_estimators=25).fit(x.drop(columns=["mean area"]), x["mean area"])
    joblib.dump(regressor, folder / "area-xgb.joblib")
    return Trained(
        folder=folder,
        risk=folder / "risk.joblib",
        risk_sample=folder / "risk.csv",
        cancer_xgb=folder / "cancer-xgb.json",
        cancer_lgb=folder / "cancer-lgb.txt",
        cancer_sample=folder / "cancer.csv",
        area_xgb=folder / "area-xgb.joblib",
    )
