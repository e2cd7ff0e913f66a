"""Realised quality with its evidence: every rate with a 95% interval, every count beside it.

A window's live quality is a sample (the items feedback labelled), so a number alone overstates
what is known: 3 of 3 correct is "accuracy between 44% and 100%".  Each metric comes with a 95%
interval, by a stated method:

* a proportion (accuracy, and per class precision and recall): the Wilson score interval, which
  stays inside [0, 1] and honest at 0 of n and n of n, where the normal approximation collapses;
* F1 (per class and macro), MAE and RMSE: a percentile bootstrap over the labelled items
  (1,000 resamples, a fixed seed, so the same window gives the same interval).

Both in numpy (``monitoring/statistics.py``, the same numbers as scipy's ``binomtest`` and
``bootstrap``): a window is judged without importing scipy.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from conveyor.monitoring import statistics

CONFIDENCE = 0.95
RESAMPLES = 1000
SEED = 0


def wilson(successes: int, trials: int) -> list[float] | None:
    """The 95% Wilson score interval of successes/trials, rounded; None for no trials."""
    if trials <= 0:
        return None
    low, high = statistics.wilson(successes, trials)
    return [round(low, 4), round(high, 4)]


def bootstrapped(statistic: Callable[..., Any], *samples: np.ndarray) -> list[Any]:
    """Seeded 95% percentile bootstrap intervals of ``statistic`` (vectorised: it takes ``axis``, and
    may return several statistics at once, one interval each) over paired samples."""
    value = np.asarray(statistic(*samples, axis=-1), dtype=np.float64)
    if len(samples[0]) < 2 or all(np.all(s == s[0]) for s in samples):
        low = high = value  # nothing varies: the interval is the point
    else:
        low, high = statistics.percentile_bootstrap(statistic, samples, RESAMPLES, CONFIDENCE, SEED)
    pairs = [[round(float(a), 6), round(float(b), 6)] for a, b in zip(np.ravel(low), np.ravel(high), strict=True)]
    return pairs if value.ndim else pairs[0]


def _f1(tp: int, predicted: int, actual: int) -> float:
    return 2 * tp / (predicted + actual) if predicted + actual else 0.0


def _f1_of(code: int) -> Callable[..., np.ndarray]:
    """F1 of one class from label codes (served, true), along ``axis``: resamples at once."""

    def f1(served: np.ndarray, true: np.ndarray, axis: int = -1) -> np.ndarray:
        tp = np.sum((served == code) & (true == code), axis=axis)
        both = np.sum(served == code, axis=axis) + np.sum(true == code, axis=axis)
        return np.where(both > 0, 2 * tp / np.maximum(both, 1), 0.0)

    return f1


def classifier_quality(served: Sequence[str], truth: Sequence[str], labels: Sequence[str]) -> dict[str, Any]:
    """Accuracy, per class precision, recall, F1 and counts, and their macro averages, with intervals."""
    answers, actual = np.asarray(served, dtype=object), np.asarray(truth, dtype=object)
    n = len(answers)
    correct = int(np.sum(answers == actual))
    known = [label for label in labels if label in set(answers) | set(actual)] or list(labels)
    classes: dict[str, Any] = {}
    for label in known:
        tp = int(np.sum((answers == label) & (actual == label)))
        predicted, support = int(np.sum(answers == label)), int(np.sum(actual == label))
        classes[label] = {
            "true": support,
            "predicted": predicted,
            "correct": tp,
            "precision": round(tp / predicted, 4) if predicted else None,
            "precision_ci": wilson(tp, predicted),
            "recall": round(tp / support, 4) if support else None,
            "recall_ci": wilson(tp, support),
            "f1": round(_f1(tp, predicted, support), 4),
        }
    codes = {label: i for i, label in enumerate(known)}
    y_served = np.array([codes.get(a, -1) for a in answers])
    y_true = np.array([codes.get(t, -1) for t in actual])

    def f1s(served: np.ndarray, true: np.ndarray, axis: int = -1) -> np.ndarray:
        """Each class's F1, then their mean (macro F1): one bootstrap for all of them."""
        each = np.stack([_f1_of(code)(served, true, axis) for code in codes.values()])
        return np.concatenate([each, each.mean(axis=0, keepdims=True)])

    *per_class, macro_ci = bootstrapped(f1s, y_served, y_true)
    for label, interval in zip(codes, per_class, strict=True):
        classes[label]["f1_ci"] = interval
    precisions = [c["precision"] for c in classes.values() if c["precision"] is not None]
    recalls = [c["recall"] for c in classes.values() if c["recall"] is not None]
    return {
        "labelled": n,
        "accuracy": round(correct / n, 4),
        "accuracy_ci": wilson(correct, n),
        "correct": correct,
        "classes": classes,
        "macro": {
            "precision": round(float(np.mean(precisions)), 4) if precisions else None,
            "recall": round(float(np.mean(recalls)), 4) if recalls else None,
            "f1": round(float(f1s(y_served, y_true)[-1]), 4),
            "f1_ci": macro_ci,
        },
    }


def regressor_quality(served: Sequence[float], truth: Sequence[float]) -> dict[str, Any]:
    """Mean absolute error and root mean squared error, each with a bootstrap interval."""
    errors = np.asarray(served, dtype=np.float64) - np.asarray(truth, dtype=np.float64)

    def mae(e: np.ndarray, axis: int = -1) -> np.ndarray:
        return np.mean(np.abs(e), axis=axis)

    def rmse(e: np.ndarray, axis: int = -1) -> np.ndarray:
        return np.sqrt(np.mean(e**2, axis=axis))

    def both(e: np.ndarray, axis: int = -1) -> np.ndarray:
        return np.stack([mae(e, axis), rmse(e, axis)])

    mae_ci, rmse_ci = bootstrapped(both, errors)
    return {
        "labelled": len(errors),
        "mae": round(float(mae(errors)), 6),
        "mae_ci": mae_ci,
        "rmse": round(float(rmse(errors)), 6),
        "rmse_ci": rmse_ci,
    }
