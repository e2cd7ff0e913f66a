"""Value-distribution shift: does a regressor's canary answer from the same distribution as stable?

``prediction_shift`` compares label shares; a regressor has no labels, and mirrored agreement
only sees the copied requests.  In the canary stage both versions take live traffic from the same
population of users, so the values they answer should come from one distribution.  The router
keeps each backend's latest answers (``VALUES_KEPT``); this metric runs a two-sample
Kolmogorov-Smirnov test (scipy) on the window's values.  A canary fails when the KS statistic
(the largest gap between the two cumulative distributions) exceeds ``max_value_shift`` *and* the
test's p-value is below 0.01: a gap too small to matter, or one too few answers can explain, is
not a failure.  Off by default (a retrained regressor may move on purpose); needs
``min_requests`` values on both sides, else the window is inconclusive.

No Argo Rollouts counterpart: Prometheus has no two-sample test (export the canary with the
metric off, or keep this analysis in Conveyor's controller).
"""

from __future__ import annotations

from statistics import median

from conveyor.extras import needs
from conveyor.rollout.analysis.metric import AnalysisWindow, Metric, Threshold, Verdict, metric

SIGNIFICANCE = 0.01


@metric
class ValueShift(Metric):
    name = "value_shift"
    summary = "a regressor's answer distribution, canary against stable (two-sample KS), on live traffic"
    order = 26
    thresholds = (
        Threshold(
            "max_value_shift",
            float,
            None,
            "largest KS statistic between canary and stable answer values (e.g. 0.2)",
            ge=0,
            le=1,
            optional=True,
        ),
    )
    shown = ("value_shift",)

    def applies(self, window: AnalysisWindow) -> bool:
        return window.stage == "canary" and window.limits.max_value_shift is not None

    def measure(self, window: AnalysisWindow, verdict: Verdict) -> None:
        with needs("monitor", "the value-shift metric"):
            from scipy.stats import ks_2samp

        limit = window.limits.max_value_shift
        canary, stable = window.traffic("canary").values, window.traffic("stable").values
        if min(len(canary), len(stable)) < window.limits.min_requests:
            verdict.add(
                "inconclusive",
                f"value shift needs {window.limits.min_requests} answered values from each version "
                f"(canary {len(canary)}, stable {len(stable)})",
            )
            return
        test = ks_2samp(canary, stable)
        statistic, pvalue = float(test.statistic), float(test.pvalue)
        verdict.measurements["value_shift"] = round(statistic, 4)
        verdict.measurements["value_shift_p"] = float(f"{pvalue:.3g}")
        if statistic > limit and pvalue < SIGNIFICANCE:
            verdict.add(
                "failed",
                f"the canary's values are distributed unlike stable's: KS {statistic:.2f} over the limit "
                f"{limit:.2f} (p {pvalue:.2g}; canary median {median(canary):.4g}, stable {median(stable):.4g})",
            )
