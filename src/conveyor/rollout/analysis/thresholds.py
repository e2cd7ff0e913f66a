"""The rollout's thresholds: the general limits plus every metric's own, as one pydantic model.

``Thresholds`` is assembled from the metric table (:mod:`conveyor.rollout.analysis.metrics`), so a
metric's threshold is a field of the persisted status record, a key of conveyor.yaml's
``rollout.thresholds`` and an option of ``conveyor rollout start`` without being written down
anywhere else.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field, create_model

from conveyor.rollout.analysis.metric import Threshold
from conveyor.rollout.analysis.metrics import all_metrics, all_thresholds

__all__ = ["Thresholds", "all_metrics", "all_thresholds"]


def _field(threshold: Threshold) -> tuple[Any, Any]:
    kind: Any = threshold.type | None if threshold.optional else threshold.type
    bounds = {k: v for k, v in (("ge", threshold.ge), ("le", threshold.le), ("gt", threshold.gt)) if v is not None}
    return kind, Field(threshold.default, description=threshold.help, **bounds)


Thresholds: type[BaseModel] = create_model(  # type: ignore[call-overload]
    "Thresholds",
    __doc__="When an analysis is successful, failed or inconclusive (see docs/rollouts.md).",
    **{t.name: _field(t) for t in all_thresholds()},
)
