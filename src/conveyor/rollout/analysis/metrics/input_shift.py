"""Input shift: are the canary and stable asked the same kind of questions?

Every other canary comparison (error rates, p99, label shares, value distributions) assumes both
versions see one population of requests, which a weighted random split gives.  Sticky routing by
a user header, clients that pin a version, or retries that favour one backend can break it: the
canary then answers other questions, and a shift in its answers says nothing about the model.
The router notes each ``/predict`` body's numbers while a canary splits live traffic (a text's
characters and words, a record's numeric fields: ``router/inputs.py``); this metric runs a
two-sample Kolmogorov-Smirnov test (scipy) per feature on the window's numbers.  When a feature
differs by more than ``max_input_shift`` with p below 0.01, the window is *inconclusive*, not
failed: the canary is not at fault, the comparison is unfair; enough such windows in a row
pause the rollout (``max_inconclusive``) for a person to look at the routing.  Off by default.

No Argo Rollouts counterpart: the inputs never reach Prometheus.
"""

from __future__ import annotations

from statistics import median

from conveyor.extras import needs
from conveyor.rollout.analysis.metric import AnalysisWindow, Metric, Threshold, Verdict, metric

SIGNIFICANCE = 0.01


@metric
class InputShift(Metric):
    name = "input_shift"
    summary = "the inputs canary and stable are asked, per feature (two-sample KS): is the comparison fair?"
    order = 27
    thresholds = (
        Threshold(
            "max_input_shift",
            float,
            None,
            "largest KS statistic between canary's and stable's input numbers per feature (e.g. 0.2)",
            ge=0,
            le=1,
            optional=True,
        ),
    )
    shown = ("input_shift", "input_shift_feature")

    def applies(self, window: AnalysisWindow) -> bool:
        return window.stage == "canary" and window.limits.max_input_shift is not None

    def measure(self, window: AnalysisWindow, verdict: Verdict) -> None:
        with needs("monitor", "the input-shift metric"):
            from scipy.stats import ks_2samp

        limit = window.limits.max_input_shift
        canary, stable = window.traffic("canary").inputs, window.traffic("stable").inputs
        enough = window.limits.min_requests
        shared = sorted(n for n in set(canary) & set(stable) if min(len(canary[n]), len(stable[n])) >= enough)
        if not shared:
            verdict.add(
                "inconclusive",
                f"input shift needs {enough} input numbers of one feature from each version's /predict traffic "
                f"(canary: {_counts(canary)}; stable: {_counts(stable)})",
            )
            return
        tests = {name: ks_2samp(canary[name], stable[name]) for name in shared}
        worst = max(shared, key=lambda name: float(tests[name].statistic))
        verdict.measurements["input_shift"] = round(float(tests[worst].statistic), 4)
        verdict.measurements["input_shift_feature"] = worst
        shifted = [n for n in shared if float(tests[n].statistic) > limit and float(tests[n].pvalue) < SIGNIFICANCE]
        if shifted:
            details = "; ".join(
                f"{n}: KS {float(tests[n].statistic):.2f}, median {median(canary[n]):.4g} against "
                f"{median(stable[n]):.4g}"
                for n in shifted
            )
            verdict.add(
                "inconclusive",
                f"canary and stable are asked different inputs ({details}; limit {limit:.2f}): comparing their "
                "answers would be unfair; check sticky routing, pinned clients and retries",
            )


def _counts(inputs: dict[str, list[float]]) -> str:
    return ", ".join(f"{name} {len(numbers)}" for name, numbers in sorted(inputs.items())) or "none"
