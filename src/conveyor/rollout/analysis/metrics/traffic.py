"""Router traffic: the canary's error rate and p99 latency, absolute and relative to stable.

Latency is judged by :mod:`conveyor.rollout.analysis.latency`, which knows how many samples a p99 needs.

In the canary stage both versions take live traffic and the canary is compared with stable;
before a blue-green switch only mirrored copies reach the new version (judged on their own);
after it all live traffic does.

In a cluster (``argo()``) the same rules are Prometheus queries over the model server's own counters of
prediction requests (``rollout/promql.py``): too few requests is inconclusive, the comparisons with stable
apply where stable has enough, and a p99 over its limit from too few samples is inconclusive.  The rank test
on the median has no PromQL form and stays with Conveyor's controller.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from conveyor.rollout.analysis.latency import TAIL_QUANTILE, judge_latency, samples_needed
from conveyor.rollout.analysis.metric import AnalysisWindow, ArgoContext, Metric, Threshold, Traffic, Verdict, metric
from conveyor.rollout.promql import NAN, Pods, at_most, judged_or_nan, only_if
from conveyor.router.stats import LIVE, MIRROR

if TYPE_CHECKING:
    from conveyor.rollout.analysis.thresholds import Thresholds


def judge_traffic(verdict: Verdict, canary: Traffic, stable: Traffic | None, limits: Thresholds, who: str) -> None:
    """Error rate and p99 of ``canary`` (absolute), and relative to ``stable`` when stable has data."""
    measured = verdict.measurements
    measured[f"{who}_requests"] = canary.requests
    measured[f"{who}_label_shares"] = canary.label_shares()
    if stable is not None:
        measured["stable_requests"] = stable.requests
        measured["stable_label_shares"] = stable.label_shares()
    if canary.requests < limits.min_requests:
        verdict.add("inconclusive", f"{canary.requests} {who} requests in the window; at least {limits.min_requests}")
        return
    rate = canary.error_rate
    measured[f"{who}_error_rate"] = round(rate, 4)
    known = stable if stable is not None and stable.requests >= limits.min_requests else None
    if known is not None:
        measured["stable_error_rate"] = round(known.error_rate, 4)
    if rate > limits.max_error_rate:
        verdict.add("failed", f"{who} error rate {rate:.1%} over the limit {limits.max_error_rate:.1%}")
    elif known is not None and rate > known.error_rate + limits.max_error_rate_increase and canary.errors >= 2:
        verdict.add(
            "failed",
            f"{who} error rate {rate:.1%} exceeds stable's {known.error_rate:.1%} "
            f"by more than {limits.max_error_rate_increase:.1%}",
        )
    judge_latency(verdict, canary, known, limits, who)


@metric
class TrafficMetric(Metric):
    name = "traffic"
    summary = "error rate and p99 latency of the new version, absolute and against stable"
    order = 10
    thresholds = (
        Threshold("min_requests", int, 20, "canary requests per window below which it is inconclusive", ge=1),
        Threshold("max_error_rate", float, 0.05, "absolute ceiling on the canary's error rate", ge=0, le=1),
        Threshold("max_error_rate_increase", float, 0.02, "canary minus stable error rate", ge=0, le=1),
        Threshold("max_p99_ms", float, None, "absolute ceiling on the canary's p99 latency", gt=0, optional=True),
        Threshold("max_p99_ratio", float, 2.0, "canary p99 / stable p99 ceiling", gt=0),
        Threshold("p99_floor_ms", float, 25.0, "p99 below this never fails the ratio check", ge=0),
        Threshold(
            "latency_tail_samples", int, 5, "samples beyond a latency quantile needed to judge it (p99: 100x)", ge=1
        ),
        Threshold(
            "latency_alpha", float, 0.001, "significance of the rank test that finds a slower canary", gt=0, le=0.5
        ),
    )
    shown = (
        "canary_requests",
        "mirrored_requests",
        "stable_requests",
        "canary_error_rate",
        "mirrored_error_rate",
        "stable_error_rate",
        "canary_p99_ms",
        "mirrored_p99_ms",
        "stable_p99_ms",
    )

    def measure(self, window: AnalysisWindow, verdict: Verdict) -> None:
        limits = window.limits
        if window.stage == "pre-promotion":
            judge_traffic(verdict, window.traffic("canary", MIRROR), None, limits, "mirrored")
        elif window.stage == "post-promotion":
            judge_traffic(verdict, window.traffic("canary", LIVE), None, limits, "canary")
        else:
            judge_traffic(verdict, window.traffic("canary"), window.traffic("stable"), limits, "canary")

    def argo(self, limits: Any, ctx: ArgoContext) -> list[dict[str, Any]]:
        """Error rate and p99 of the canary's prediction requests, absolute and against stable (rollout/promql.py)."""
        canary, stable = Pods(ctx.canary, ctx.window), Pods(ctx.stable, ctx.window)
        least = limits.min_requests
        needed = samples_needed(TAIL_QUANTILE, limits.latency_tail_samples)
        queries: list[tuple[str, str, tuple[str, str]]] = [
            # too few prediction requests (probes and scrapes never count): NaN, inconclusive
            ("error-rate", f"{canary.error_rate(least)} or {NAN}", at_most(limits.max_error_rate)),
            # against stable's, where stable has enough requests and the canary at least two errors
            (
                "error-rate-increase",
                only_if(f"{canary.error_rate(least)} - {stable.error_rate(least)}", f"{canary.errors()} >= 2"),
                at_most(limits.max_error_rate_increase),
            ),
        ]
        canary_samples = f"{canary.samples()} >= {needed}"
        if limits.max_p99_ms is not None:
            seconds = limits.max_p99_ms / 1000
            queries.append(("p99-latency", judged_or_nan(canary.p99(), seconds, [canary_samples]), at_most(seconds)))
        # failed when the canary's p99 is over both the floor and ratio x stable's: ratio x max(stable's, floor/ratio)
        ratio = limits.max_p99_ratio
        over_stable = only_if(
            f"{canary.p99()} / clamp_min({stable.p99()}, {limits.p99_floor_ms / 1000 / ratio:.6g})",
            f"{stable.requests()} >= {least}",
        )
        enough = [canary_samples, f"{stable.samples()} >= {needed}"]
        queries.append(("p99-ratio", judged_or_nan(over_stable, ratio, enough), at_most(ratio)))
        return [
            {
                "name": name,
                "interval": ctx.interval,
                "failureLimit": 0,
                "inconclusiveLimit": limits.max_inconclusive,
                "consecutiveErrorLimit": limits.max_measurement_errors,
                "successCondition": success,
                "failureCondition": failure,
                "provider": {"prometheus": {"address": ctx.prometheus, "query": query}},
            }
            for name, query, (success, failure) in queries
        ]
