"""Prediction agreement: on mirrored requests, how often the new version answers as stable does.

The router copies ``mirror_percent`` of stable's traffic to the canary and compares the
two answers: a classifier's labels exactly (text, tabular and image tasks alike: the
probabilities may move, the label may not), a regressor's values within ``value_tolerance``
(relative) or ``value_tolerance_abs``; an answer the router cannot read is compared byte for
byte.  Below ``min_agreement`` the analysis fails.  It has no Argo Rollouts
counterpart (a cluster would need a mirroring mesh).
"""

from __future__ import annotations

from typing import Any

from conveyor.rollout.analysis.metric import AnalysisWindow, Metric, Threshold, Verdict, metric, window_comparisons


def judge_agreement(verdict: Verdict, agreed: int, disagreed: int, limits: Any) -> None:
    compared = agreed + disagreed
    verdict.measurements["mirrored_compared"] = compared
    if compared < limits.min_compared:
        verdict.add("inconclusive", f"{compared} mirrored answers compared; at least {limits.min_compared}")
        return
    agreement = agreed / compared
    verdict.measurements["agreement"] = round(agreement, 4)
    if agreement < limits.min_agreement:
        verdict.add(
            "failed",
            f"predictions agree with stable on {agreement:.1%} of mirrored requests "
            f"(minimum {limits.min_agreement:.0%})",
        )


@metric
class AgreementMetric(Metric):
    name = "agreement"
    summary = "share of mirrored requests the new version answers as stable does"
    order = 20
    thresholds = (
        Threshold("min_agreement", float, 0.9, "minimum share of agreeing predictions", ge=0, le=1),
        Threshold("min_compared", int, 20, "compared mirrored answers for a verdict", ge=1),
        Threshold(
            "value_tolerance", float, 0.05, "a regression answer agrees within this share of stable's value", ge=0
        ),
        Threshold("value_tolerance_abs", float, 0.0, "... or within this absolute difference of stable's value", ge=0),
    )
    shown = ("mirrored_compared", "agreement")

    def applies(self, window: AnalysisWindow) -> bool:
        return window.stage != "post-promotion" and window.limits.mirror_percent > 0

    def measure(self, window: AnalysisWindow, verdict: Verdict) -> None:
        agreed, disagreed = window_comparisons(window.before, window.after, *window.canary)
        judge_agreement(verdict, agreed, disagreed, window.limits)
