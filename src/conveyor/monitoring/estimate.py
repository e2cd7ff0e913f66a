"""Quality before the labels arrive: estimated from the answers alone, learnt on the labelled reference.

Labels come weeks late or never; what a model answers comes at once.  Where the reference rows
carry their true answers (a ``label`` or ``value`` column), the profile keeps up to
``KEPT`` of them scored (``QualityReference``), and each window of served traffic gets an estimate
beside its realised quality (NannyML's two methods, described in its documentation; written here
in numpy and scikit-learn, not copied):

* **CBPE** (confidence-based performance estimation), for classifiers: each class's served
  probability is calibrated one-vs-rest on the reference (isotonic regression, fitted once when
  the profile is made and kept in it as plain numbers: knots and values; each item's calibrated
  probabilities are then scaled to sum to 1).  A calibrated probability is the chance
  the answer is right, so a window's expected accuracy is the mean calibrated probability of the
  answered class, and expected true/false positives per class give precision, recall and F1.
  ``accuracy_range`` is where the realised accuracy should fall (95%) if the estimate holds: the
  spread of a sum of independent Bernoulli outcomes.  The assumption: calibration learnt on the
  reference still holds, i.e. the inputs shift (covariate shift) but the truth given an input does
  not (no concept drift).  When the world itself changes, only labels show it.  It needs the
  served probabilities: a server's log has them, a router's does not.
* **DLE** (direct loss estimation), for regressors: two gradient-boosted tree models trained on
  the reference predict, from an item's inputs and the served value, its absolute error and its
  squared error (Poisson loss: a log link for a non-negative target whose scale differs by
  orders of magnitude from one region to another, which squared loss smears across them).  A
  window's estimated MAE is the mean of the first, its RMSE the root of the mean of the second.
  The same assumption: errors depend on the inputs as they did on the reference.

CBPE's calibration is part of the profile (a profile that predates it has it fitted once when
judged and kept beside it, ``profile.stored_profile``), so judging a classifier's window needs
neither scikit-learn nor scipy.  DLE's trees are fitted once too, with fixed seeds, and kept in
the profile as numbers that numpy walks (``monitoring/loss_trees.py``): judging a regressor's
window needs no scikit-learn either.
"""

from __future__ import annotations

import contextlib
import random
from typing import Any

import numpy as np
from pydantic import BaseModel, Field

from conveyor.errors import MissingExtra
from conveyor.monitoring import loss_trees
from conveyor.monitoring.statistics import isotonic_fit, isotonic_predict
from conveyor.serving.payload_record import RequestRecord

KEPT = 2000  # labelled reference rows kept in the profile
MAX_CATEGORIES = 250  # per categorical input of DLE's trees (their limit is 255 bins)
Z95 = 1.959964


class QualityReference(BaseModel):
    """The labelled reference rows as the served model scored them: what estimates are learnt from."""

    labelled: int = Field(description="Reference items with a true answer.")
    labels: list[str] = Field(default_factory=list, description="A classifier's labels, in score order.")
    scores: list[list[float]] = Field(default_factory=list, description="A classifier's probabilities per kept row.")
    inputs: list[dict[str, Any]] = Field(default_factory=list, description="A regressor's features per kept row.")
    predictions: list[float] = Field(default_factory=list, description="A regressor's served value per kept row.")
    truth: list[Any] = Field(default_factory=list, description="The true label or value per kept row.")
    realised: dict[str, Any] = Field(default_factory=dict, description="The reference's own quality.")
    loss_models: dict[str, Any] = Field(
        default_factory=dict,
        description="DLE's error models of a regressor, fitted on the kept rows: the features' encoding and "
        "each model's trees as numbers (empty in a profile that predates them: fitted when judged, kept beside it).",
    )
    calibration: list[list[list[float]]] = Field(
        default_factory=list,
        description="CBPE's isotonic calibration of a classifier, per label: [knots, values], read by linear "
        "interpolation (empty in a profile that predates it: fitted when judged, kept beside the profile).",
    )


def loss_models_of(reference: QualityReference) -> dict[str, Any]:
    """DLE's two error models fitted on the kept reference rows (scikit-learn), as plain numbers:
    the features' encoding (numeric columns, category codes) and each model's trees."""
    from conveyor.extras import needs

    with needs("monitor", "quality estimates (conveyor monitor)"):
        from sklearn.ensemble import HistGradientBoostingRegressor

    names = sorted({key for row in reference.inputs for key in row})
    numeric = [n for n in names if all(_number(r.get(n)) for r in reference.inputs if r.get(n) is not None)]
    categorical = [n for n in names if n not in numeric]
    seen = {n: sorted({str(r[n]) for r in reference.inputs if r.get(n) is not None}) for n in categorical}
    # the trees take at most MAX_CATEGORIES categories per feature; a column with more (an id) is left out
    codes = {n: {v: i for i, v in enumerate(values)} for n, values in seen.items() if len(values) <= MAX_CATEGORIES}
    x = _matrix(numeric, codes, reference.inputs, reference.predictions)
    errors = np.asarray(reference.predictions) - np.asarray(reference.truth, dtype=np.float64)
    mask = [False] * len(numeric) + [True] * len(codes) + [False]

    def trees() -> Any:
        return HistGradientBoostingRegressor(
            loss="poisson",
            max_iter=100,
            min_samples_leaf=20,
            categorical_features=mask if codes else None,
            random_state=0,
        )

    return {
        "numeric": numeric,
        "codes": codes,
        "absolute": loss_trees.trees_of(trees().fit(x, np.abs(errors))),
        "squared": loss_trees.trees_of(trees().fit(x, errors**2)),
    }


def calibration_of(reference: QualityReference) -> list[list[list[float]]]:
    """Each label's served probability calibrated one-vs-rest on the kept reference rows."""
    scores = np.asarray(reference.scores, dtype=np.float64)
    truth = np.asarray(reference.truth, dtype=object)
    return [list(isotonic_fit(scores[:, k], truth == label)) for k, label in enumerate(reference.labels)]


def quality_reference(
    labels: list[str], scores: list[list[float]] | None, inputs: list[Any], predictions: list[float], truth: list[Any]
) -> QualityReference | None:
    """The kept labelled rows (a seeded sample of ``KEPT``) and the reference's realised quality;
    None where no row has a true answer."""
    from conveyor.monitoring.evidence import classifier_quality, regressor_quality

    rows = [i for i, answer in enumerate(truth) if answer is not None and answer != ""]
    if not rows:
        return None
    labelled = len(rows)
    if len(rows) > KEPT:
        rows = sorted(random.Random(0).sample(rows, KEPT))
    if scores is not None:
        kept = [[round(float(p), 6) for p in scores[i]] for i in rows]
        answers = [labels[int(np.argmax(row))] for row in kept]
        true = [str(truth[i]) for i in rows]
        realised = classifier_quality(answers, true, labels)
        reference = QualityReference(labelled=labelled, labels=labels, scores=kept, truth=true, realised=realised)
        reference.calibration = calibration_of(reference)  # kept with the profile: never refitted when judged
        return reference
    true_values = [float(truth[i]) for i in rows]
    served = [float(predictions[i]) for i in rows]
    reference = QualityReference(
        labelled=labelled,
        inputs=[dict(inputs[i]) if isinstance(inputs[i], dict) else {} for i in rows],
        predictions=served,
        truth=true_values,
        realised=regressor_quality(served, true_values),
    )
    with contextlib.suppress(MissingExtra):  # no scikit-learn here: fitted when judged, where it is
        reference.loss_models = loss_models_of(reference)  # kept with the profile: never refitted
    return reference


class Cbpe:
    """Expected classifier quality from served probabilities, calibrated on the reference."""

    def __init__(self, reference: QualityReference) -> None:
        self.labels = reference.labels
        self.calibration = reference.calibration or calibration_of(reference)

    def calibrated(self, scores: np.ndarray) -> np.ndarray:
        calibrated = np.column_stack(
            [isotonic_predict(knots, values, scores[:, k]) for k, (knots, values) in enumerate(self.calibration)]
        )
        sums = calibrated.sum(axis=1, keepdims=True)
        return np.where(sums > 0, calibrated / np.where(sums > 0, sums, 1), 1 / len(self.labels))

    def estimate(self, probabilities: list[list[float]]) -> dict[str, Any] | None:
        if not probabilities:
            return None
        scores = np.asarray(probabilities, dtype=np.float64)
        answered = scores.argmax(axis=1)
        p = self.calibrated(scores)
        right = p[np.arange(len(p)), answered]
        n = len(right)
        accuracy = float(right.mean())
        spread = Z95 * float(np.sqrt(np.sum(right * (1 - right)))) / n
        classes, precisions, recalls, f1s = {}, [], [], []
        for k, label in enumerate(self.labels):
            tp = float(p[answered == k, k].sum())
            fp = float((1 - p[answered == k, k]).sum())
            fn = float(p[answered != k, k].sum())
            precision = tp / (tp + fp) if tp + fp else None
            recall = tp / (tp + fn) if tp + fn else None
            f1 = 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 0.0
            classes[label] = {"precision": _round(precision), "recall": _round(recall), "f1": round(f1, 4)}
            precisions += [precision] if precision is not None else []
            recalls += [recall] if recall is not None else []
            f1s.append(f1)
        return {
            "method": "CBPE",
            "items": n,
            "accuracy": round(accuracy, 4),
            "accuracy_range": [round(max(0.0, accuracy - spread), 4), round(min(1.0, accuracy + spread), 4)],
            "classes": classes,
            "macro": {
                "precision": _round(float(np.mean(precisions)) if precisions else None),
                "recall": _round(float(np.mean(recalls)) if recalls else None),
                "f1": round(float(np.mean(f1s)), 4),
            },
        }


class Dle:
    """Expected regressor error from the inputs and the served value, learnt on the reference."""

    def __init__(self, reference: QualityReference) -> None:
        fitted = reference.loss_models or loss_models_of(reference)
        self.numeric: list[str] = fitted["numeric"]
        self.codes: dict[str, dict[str, int]] = fitted["codes"]
        self.absolute, self.squared = fitted["absolute"], fitted["squared"]

    def matrix(self, inputs: list[Any], predictions: list[float]) -> np.ndarray:
        return _matrix(self.numeric, self.codes, inputs, predictions)

    def estimate(self, inputs: list[Any], predictions: list[float]) -> dict[str, Any] | None:
        if not predictions:
            return None
        x = self.matrix(inputs, predictions)
        mae = float(np.clip(loss_trees.predict(self.absolute, x), 0, None).mean())
        rmse = float(np.sqrt(np.clip(loss_trees.predict(self.squared, x), 0, None).mean()))
        return {"method": "DLE", "items": len(predictions), "mae": round(mae, 6), "rmse": round(rmse, 6)}


def estimate_window(estimator: Cbpe | Dle | None, records: list[RequestRecord]) -> dict[str, Any] | None:
    """The estimate for one window's logged requests (every item, labelled or not)."""
    served = [[o.get("value") if isinstance(o, dict) else None for o in r.outputs] for r in records]
    return estimate_served(estimator, [r.probabilities for r in records], [r.inputs for r in records], served)


def estimate_served(
    estimator: Cbpe | Dle | None,
    probabilities: list[list[list[float]] | None],
    inputs: list[list[Any] | None],
    served: list[list[Any]],
) -> dict[str, Any] | None:
    """``estimate_window`` from each logged request's probabilities, inputs and served answers
    (a regressor's values): what a stored summary keeps."""
    if isinstance(estimator, Cbpe):
        return estimator.estimate([row for rows in probabilities if rows for row in rows])
    if isinstance(estimator, Dle):
        items_all: list[Any] = []
        values: list[float] = []
        for items, answers in zip(inputs, served, strict=True):
            for item, value in zip(items or [None] * len(answers), answers, strict=False):
                if isinstance(value, int | float) and not isinstance(value, bool):
                    items_all.append(item)
                    values.append(float(value))
        return estimator.estimate(items_all, values)
    return None


def estimator_for(reference: QualityReference | None) -> Cbpe | Dle | None:
    """The estimator a profile's labelled reference supports (None without one)."""
    if reference is None or not reference.truth:
        return None
    return Cbpe(reference) if reference.scores else Dle(reference)


def _matrix(
    numeric: list[str], codes: dict[str, dict[str, int]], inputs: list[Any], predictions: list[float]
) -> np.ndarray:
    """DLE's features: the numeric inputs, the categories' codes (NaN where unseen), the served value."""
    rows = []
    for item, value in zip(inputs, predictions, strict=True):
        item = item if isinstance(item, dict) else {}
        numbers = [float(item[n]) if _number(item.get(n)) else np.nan for n in numeric]
        coded = [float(c.get(str(item.get(n)), np.nan)) for n, c in codes.items()]
        rows.append([*numbers, *coded, float(value)])
    return np.asarray(rows, dtype=np.float64)


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 4)
