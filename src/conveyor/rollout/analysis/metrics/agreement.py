"""Prediction agreement: on mirrored requests, how often the new version answers as stable does.

The router copies ``mirror_percent`` of stable's traffic to the canary and compares the
two answers: a classifier's labels exactly (text, tabular and image tasks alike: the
probabilities may move, the label may not), a regressor's values within ``value_tolerance``
(relative) or ``value_tolerance_abs``; an answer the router cannot read is compared byte for
byte.  The bar comes from evidence: the agreement the two versions reached on the new version's
reference sample at ``rollout start`` (:mod:`conveyor.rollout.analysis.expectation`), less
``agreement_tolerance``, at least ``min_agreement_over_chance`` of the way from chance to full
agreement; the analysis fails when the live share's 95% Wilson interval lies wholly below it, is
inconclusive (the window grows) while the share is below it but the interval reaches it, and
passes when the share reaches it; where the measurement at start lies wholly below the bar, it
passes only when the live interval's lower end reaches the bar.  A ``min_agreement`` given
explicitly replaces the bar with that fixed share, and without a reference sample the bar is
:data:`FALLBACK_MIN_AGREEMENT`.  In a cluster, only Conveyor's router compares mirrored answers: where
Prometheus scrapes one in front of the pods (``rollout export --router-job``), the ``AnalysisTemplate`` judges
its counters against the fixed bar; a Gateway's ``RequestMirror`` copies requests but compares nothing.
"""

from __future__ import annotations

from typing import Any

from conveyor.rollout.analysis.expectation import FALLBACK_MIN_AGREEMENT, ExpectedAgreement, wilson_interval
from conveyor.rollout.analysis.metric import (
    AnalysisWindow,
    ArgoContext,
    Metric,
    Threshold,
    Verdict,
    metric,
    window_comparisons,
)
from conveyor.rollout.promql import NAN, at_least


def judge_agreement(
    verdict: Verdict, agreed: int, disagreed: int, limits: Any, expected: ExpectedAgreement | None = None
) -> None:
    compared = agreed + disagreed
    verdict.measurements["mirrored_compared"] = compared
    if compared < limits.min_compared:
        verdict.add("inconclusive", f"{compared} mirrored answers compared; at least {limits.min_compared}")
        return
    agreement = agreed / compared
    verdict.measurements["agreement"] = round(agreement, 4)
    if limits.min_agreement is not None or expected is None:
        minimum = FALLBACK_MIN_AGREEMENT if limits.min_agreement is None else limits.min_agreement
        verdict.measurements["min_agreement"] = minimum
        if agreement < minimum:
            verdict.add(
                "failed",
                f"predictions agree with stable on {agreement:.1%} of mirrored requests (minimum {minimum:.0%})",
            )
        return
    bar = expected.bar(limits.agreement_tolerance, limits.min_agreement_over_chance)
    low, high = wilson_interval(agreed, compared)
    verdict.measurements["expected_agreement"] = round(expected.share, 4)
    verdict.measurements["agreement_bar"] = round(bar, 4)
    verdict.measurements["agreement_interval"] = [round(low, 4), round(high, 4)]
    if high < bar:
        verdict.add(
            "failed",
            f"predictions agree with stable on {agreement:.1%} of {compared} mirrored requests "
            f"(95% interval {low:.1%} to {high:.1%}), below the {bar:.1%} bar: the two versions agreed "
            f"on {expected.share:.1%} of {expected.items} reference items ({expected.source}; "
            f"{expected.chance:.1%} by chance)",
        )
    elif agreement < bar:
        verdict.add(
            "inconclusive",
            f"predictions agree with stable on {agreement:.1%} of {compared} mirrored requests, below the "
            f"{bar:.1%} bar ({expected.share:.1%} measured at start), but its 95% interval reaches {high:.1%}: "
            "waiting for more mirrored answers",
        )
    elif low < bar and expected.known_below(bar):
        verdict.add(
            "inconclusive",
            f"predictions agree with stable on {agreement:.1%} of {compared} mirrored requests (95% interval "
            f"{low:.1%} to {high:.1%}), but the two versions agreed on only {expected.share:.1%} of "
            f"{expected.items} reference items, below the {bar:.1%} bar: waiting until the live interval clears it",
        )


@metric
class AgreementMetric(Metric):
    name = "agreement"
    summary = "share of mirrored requests the new version answers as stable does"
    order = 20
    thresholds = (
        Threshold(
            "min_agreement",
            float,
            None,
            "a fixed minimum share of agreeing predictions [default: the agreement measured at start]",
            ge=0,
            le=1,
            optional=True,
        ),
        Threshold(
            "agreement_tolerance", float, 0.05, "live agreement may fall this far below the measured one", ge=0, le=1
        ),
        Threshold(
            "min_agreement_over_chance",
            float,
            0.5,
            "the bar is at least this share of the way from chance agreement to full agreement (kappa)",
            ge=0,
            le=1,
        ),
        Threshold("min_compared", int, 20, "compared mirrored answers for a verdict", ge=1),
        Threshold(
            "value_tolerance", float, 0.05, "a regression answer agrees within this share of stable's value", ge=0
        ),
        Threshold("value_tolerance_abs", float, 0.0, "... or within this absolute difference of stable's value", ge=0),
    )
    shown = ("mirrored_compared", "agreement", "expected_agreement", "agreement_bar")

    def applies(self, window: AnalysisWindow) -> bool:
        # a generative version's mirrored answers are compared by meaning instead (metrics/generation.py)
        return window.stage != "post-promotion" and window.limits.mirror_percent > 0 and not window.generative

    def measure(self, window: AnalysisWindow, verdict: Verdict) -> None:
        agreed, disagreed = window_comparisons(window.before, window.after, *window.canary)
        judge_agreement(verdict, agreed, disagreed, window.limits, window.expected_agreement)

    def argo(self, limits: Any, ctx: ArgoContext) -> list[dict[str, Any]]:
        """The router's mirrored comparisons, where Prometheus scrapes Conveyor's router (``--router-job``).

        A fixed bar (``min_agreement``, else the fallback): the agreement measured at start lives in
        Conveyor's rollout record, which a cluster's analysis does not read."""
        if ctx.router_job is None or limits.mirror_percent <= 0:
            return []
        from conveyor.rollout.edges import CANARY  # edges starts processes: not imported at the CLI's start

        series = f'conveyor_router_mirror_comparisons_total{{job="{ctx.router_job}",backend="{CANARY}"'

        def compared(results: str) -> str:
            return f"sum(increase({series},{results}}}[{ctx.window}]))"

        agreed, answered = compared('result="agree"'), compared('result=~"agree|disagree"')
        query = f"(({agreed} or vector(0)) / ({answered} >= {limits.min_compared})) or {NAN}"
        bar = FALLBACK_MIN_AGREEMENT if limits.min_agreement is None else limits.min_agreement
        success, failure = at_least(bar)
        return [
            {
                "name": "mirrored-agreement",
                "interval": ctx.interval,
                "failureLimit": 0,
                "inconclusiveLimit": limits.max_inconclusive,
                "consecutiveErrorLimit": limits.max_measurement_errors,
                "successCondition": success,
                "failureCondition": failure,
                "provider": {"prometheus": {"address": ctx.prometheus, "query": query}},
            }
        ]
