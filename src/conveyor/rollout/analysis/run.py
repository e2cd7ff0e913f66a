"""One analysis run: every applicable metric measures the window; the worst outcome wins.

The metrics themselves live in :mod:`conveyor.rollout.analysis.metrics`, one module each, behind the
small interface of :mod:`conveyor.rollout.analysis.metric`.
"""

from __future__ import annotations

from conveyor.rollout.analysis.metric import (
    AnalysisWindow,
    MeasurementError,
    Traffic,
    Verdict,
    window_comparisons,
    window_traffic,
)
from conveyor.rollout.analysis.thresholds import all_metrics

__all__ = [
    "AnalysisWindow",
    "MeasurementError",
    "Traffic",
    "Verdict",
    "analyse",
    "window_comparisons",
    "window_traffic",
]


def analyse(window: AnalysisWindow) -> Verdict:
    """Measure ``window`` with every metric that applies to it."""
    verdict = Verdict()
    for item in all_metrics():
        if item.applies(window):
            item.measure(window, verdict)
    return verdict
