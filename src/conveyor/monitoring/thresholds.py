"""When a window of served traffic alarms: the monitoring thresholds, declared once.

``conveyor monitor``'s options, the pipeline's ``drift`` trigger keys (``conveyor.yaml``), the
dashboard's panel and a server's live gauges all read this one model: a field added here is an
option and a key everywhere, with its default, bounds and help typed once.

Live quality is judged only on evidence: a window with fewer than ``min_labels`` labelled items
is "not enough labels", neither a pass nor a fail (three wrong labels are no reason to retrain).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class Thresholds(BaseModel):
    """The limits a window of logged traffic is judged against."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    psi: float = Field(default=0.2, ge=0, description="A column drifts at this population stability index.")
    alpha: float = Field(
        default=0.01, ge=0, le=1, description="... and its test (KS or chi-square) has a p-value below this."
    )
    min_items: int = Field(default=100, ge=1, description="A smaller window is shown, not judged.")
    min_labels: int = Field(
        default=30,
        ge=1,
        description="Live quality on fewer labelled items in a window is 'not enough labels': no pass, no fail.",
    )
    min_accuracy: float | None = Field(
        default=None, ge=0, le=1, description="Alarm when live accuracy (from POST /feedback) falls below this."
    )
    max_error: float | None = Field(
        default=None, ge=0, description="A regressor: alarm when the live mean absolute error exceeds this."
    )

    def enough_labels(self, quality: dict[str, Any] | None) -> bool:
        return quality is not None and quality.get("labelled", 0) >= self.min_labels

    def quality_failed(self, quality: dict[str, Any] | None) -> bool:
        """Live quality below its bound, on at least ``min_labels`` labelled items."""
        if quality is None or not self.enough_labels(quality):
            return False
        if "accuracy" in quality and self.min_accuracy is not None:
            return bool(quality["accuracy"] < self.min_accuracy)
        if "mae" in quality and self.max_error is not None:
            return bool(quality["mae"] > self.max_error)
        return False

    def limits(self) -> dict[str, Any]:
        """The thresholds alone, as keyword arguments (for a model that extends this one)."""
        return {name: getattr(self, name) for name in Thresholds.model_fields}
