"""Analysis metrics, one module each; see :mod:`conveyor.rollout.analysis.metric` for the interface.

Every module in this package (and in a plugin's ``conveyor.metrics`` entry points, see
:mod:`conveyor.plugins`) registers its metric with ``@metric`` when it is imported;
:func:`all_metrics` imports them all once.  Nothing else lists the metrics.
"""

from __future__ import annotations

from conveyor import plugins
from conveyor.rollout.analysis.metric import Metric, Threshold, registered

GENERAL: tuple[Threshold, ...] = (
    Threshold(
        "mirror_percent",
        float,
        20.0,
        "share of stable traffic copied to the canary (0: off; blue-green: 50)",
        ge=0,
        le=100,
    ),
    Threshold("max_inconclusive", int, 3, "inconclusive analyses in a row before the rollout pauses", ge=1),
    Threshold("max_measurement_errors", int, 3, "measurement errors in a row that are tolerated", ge=0),
)


def all_metrics() -> list[Metric]:
    """Every analysis metric, in the order their verdicts are given."""
    plugins.load("metrics")
    return sorted(registered().values(), key=lambda m: (m.order, m.name))


def all_thresholds() -> list[Threshold]:
    """Every threshold: each metric's, then the general ones; names are unique."""
    found = [t for m in all_metrics() for t in m.thresholds] + list(GENERAL)
    names = [t.name for t in found]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise ValueError(f"thresholds declared twice: {repeated}")
    return found
