"""An analysis metric from outside Conveyor: a budget of live requests the new version may take."""

from __future__ import annotations

from conveyor.rollout.analysis.metric import AnalysisWindow, Metric, Threshold, Verdict, metric


@metric
class CanaryBudget(Metric):
    name = "acme-budget"
    summary = "the new version takes at most acme_max_canary_requests live requests per window"
    order = 90
    thresholds = (
        Threshold(
            "acme_max_canary_requests",
            int,
            None,
            "live requests the canary may take per window (off: unset)",
            ge=0,
            optional=True,
        ),
    )
    shown = ("acme_canary_requests",)

    def applies(self, window: AnalysisWindow) -> bool:
        return window.limits.acme_max_canary_requests is not None and window.stage == "canary"

    def measure(self, window: AnalysisWindow, verdict: Verdict) -> None:
        taken = window.traffic("canary").requests
        verdict.measurements["acme_canary_requests"] = taken
        budget = window.limits.acme_max_canary_requests
        if taken > budget:
            verdict.add("failed", f"the canary took {taken} live requests, over the acme budget of {budget}")
