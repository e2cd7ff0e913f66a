"""Prediction-distribution shift: does the new version answer "positive" as often as stable does?

Agreement needs mirrored copies of the same requests; this needs none.  In the canary stage
both versions take live traffic from the same population of users, so the share of each
label they answer should match.  A canary whose share of positive answers moves by more than
``max_prediction_shift`` (an absolute difference of shares, the largest over the labels)
fails, even if every answer is well formed and fast: the shape of a model that broke on
real inputs.  Off by default (a retrained model may shift on purpose); needs
``min_requests`` answers on both sides, else the window is inconclusive.

In a cluster the same comparison is a Prometheus query over ``conveyor_predictions_total``
of the canary pods against the stable pods, NaN (inconclusive) with fewer than ``min_requests``
labelled answers on either side.
"""

from __future__ import annotations

from typing import Any

from conveyor.rollout.analysis.metric import AnalysisWindow, ArgoContext, Metric, Threshold, Verdict, metric
from conveyor.rollout.promql import NAN, Pods, at_most, only_if


def largest_shift(canary: dict[str, float], stable: dict[str, float]) -> tuple[str, float]:
    """(label, |canary share - stable share|) for the label whose share moved most."""
    labels = sorted(set(canary) | set(stable))
    return max(((label, abs(canary.get(label, 0.0) - stable.get(label, 0.0))) for label in labels), key=lambda x: x[1])


@metric
class PredictionShift(Metric):
    name = "prediction_shift"
    summary = "the share of each predicted label, canary against stable, on live traffic"
    order = 25
    thresholds = (
        Threshold(
            "max_prediction_shift",
            float,
            None,
            "largest change in the share of a predicted label, canary against stable (e.g. 0.1)",
            ge=0,
            le=1,
            optional=True,
        ),
    )
    shown = ("prediction_shift",)

    def applies(self, window: AnalysisWindow) -> bool:
        return window.stage == "canary" and window.limits.max_prediction_shift is not None

    def measure(self, window: AnalysisWindow, verdict: Verdict) -> None:
        limit = window.limits.max_prediction_shift
        canary, stable = window.traffic("canary"), window.traffic("stable")
        canary_labelled, stable_labelled = sum(canary.labels.values()), sum(stable.labels.values())
        if min(canary_labelled, stable_labelled) < window.limits.min_requests:
            verdict.add(
                "inconclusive",
                f"prediction shift needs {window.limits.min_requests} labelled answers from each version "
                f"(canary {canary_labelled}, stable {stable_labelled})",
            )
            return
        label, shift = largest_shift(canary.label_shares(), stable.label_shares())
        verdict.measurements["prediction_shift"] = round(shift, 4)
        if shift > limit:
            canary_share = canary.label_shares().get(label, 0.0)
            stable_share = stable.label_shares().get(label, 0.0)
            verdict.add(
                "failed",
                f"the canary answers {label} {canary_share:.0%} of the time, stable {stable_share:.0%}: "
                f"a shift of {shift:.0%} over the limit {limit:.0%}",
            )

    def argo(self, limits: Any, ctx: ArgoContext) -> list[dict[str, Any]]:
        if limits.max_prediction_shift is None:
            return []
        canary, stable = Pods(ctx.canary, ctx.window), Pods(ctx.stable, ctx.window)
        shift = f"max(abs({canary.label_shares()} - {stable.label_shares()}))"
        least = limits.min_requests  # labelled answers on each side, else NaN: inconclusive
        query = f"({only_if(shift, f'{canary.labelled()} >= {least}', f'{stable.labelled()} >= {least}')}) or {NAN}"
        success, failure = at_most(limits.max_prediction_shift)
        return [
            {
                "name": "prediction-shift",
                "interval": ctx.interval,
                "failureLimit": 0,
                "inconclusiveLimit": limits.max_inconclusive,
                "consecutiveErrorLimit": limits.max_measurement_errors,
                "successCondition": success,
                "failureCondition": failure,
                "provider": {"prometheus": {"address": ctx.prometheus, "query": query}},
            }
        ]
