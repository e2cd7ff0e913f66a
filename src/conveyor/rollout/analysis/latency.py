"""Latency verdicts that know their sample size: a quantile is judged only from enough samples for it.

The p99 of 58 requests is their maximum: one request held up by a busy machine makes it, and a
canary of an identical model was rolled back for "p99 121.0 ms over 2x stable's 48.1 ms".  Two
rules keep such a window from failing:

* **Order statistics.**  An estimate of the q-quantile from n samples is only as good as the
  samples beyond it: it is judged when ``n * (1 - q) >= latency_tail_samples`` (k, 5 by default),
  so p99 needs ``k / 0.01`` = 500 samples and p50 needs 10.  From fewer, a p99 over a limit makes
  the window *inconclusive* ("... from 58 canary and 174 stable samples; p99 needs 500 of each"),
  never failed; the controller keeps the window's baseline, so the next analysis sees the
  samples of both windows.
* **A rank test for a slower canary.**  A canary whose whole distribution moved needs no tail
  samples to be caught: a one-sided Mann-Whitney U test on the router's latency histograms (the
  buckets are ordered categories; ties are counted with the usual tie correction and normal
  approximation) says whether canary requests take longer than stable's; the canary fails when
  p < ``latency_alpha`` *and* its median (a quantile few samples support) is over
  ``max_p99_ratio`` x stable's (and its p99 over ``p99_floor_ms``, as for the p99 rule).  Both
  conditions: significance alone flags a 3% shift on big windows, a ratio alone is noise on
  small ones.

How others judge latency: Kayenta's ``MannWhitneyClassifier`` (spinnaker/kayenta,
``kayenta-judge/.../classifiers/metric/MannWhitneyClassifier.scala``) runs the same test on
canary and control samples and classifies "High" only when the confidence interval of the
Hodges-Lehmann shift lies beyond a tolerated effect size; Argo Rollouts and Flagger compare a
Prometheus ``histogram_quantile`` with a fixed threshold and leave the sample size to the
query's rate window and ``count``/``inconclusiveLimit`` conditions (the Argo export keeps that
shape).  Pure functions over :class:`~conveyor.rollout.analysis.metric.Traffic`; the thresholds are
declared by the traffic metric (``rollout/analysis/metrics/traffic.py``).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from conveyor.rollout.analysis.metric import Traffic, Verdict
from conveyor.router.stats import quantile

if TYPE_CHECKING:
    from conveyor.rollout.analysis.thresholds import Thresholds

TAIL_QUANTILE = 0.99


def samples_needed(q: float, tail_samples: int) -> int:
    """Samples an estimate of the ``q``-quantile needs: ``tail_samples`` of them beyond it."""
    return math.ceil(tail_samples / (1 - q) - 1e-9)


def slower_p_value(canary: list[int], stable: list[int]) -> float:
    """One-sided Mann-Whitney U on two histograms over the same buckets: P(U this large | same latency).

    Every request in a bucket ties with the others there (a midrank); the variance is
    tie-corrected and the normal approximation carries a continuity correction."""
    n1, n2 = sum(canary), sum(stable)
    if not n1 or not n2:
        return 1.0
    u, below = 0.0, 0
    for c, s in zip(canary, stable, strict=True):
        u += c * (below + s / 2)  # canary requests slower than stable's, ties counting half
        below += s
    total = n1 + n2
    ties = sum((c + s) ** 3 - (c + s) for c, s in zip(canary, stable, strict=True))
    variance = n1 * n2 / 12 * ((total + 1) - ties / (total * (total - 1)))
    if variance <= 0:
        return 1.0  # every request in one bucket: no evidence either way
    z = (u - n1 * n2 / 2 - 0.5) / math.sqrt(variance)
    return 0.5 * math.erfc(z / math.sqrt(2))


def _ms(q: float, traffic: Traffic) -> float | None:
    value = quantile(q, traffic.buckets) if traffic.buckets else None
    return None if value is None else value * 1000


def judge_latency(verdict: Verdict, canary: Traffic, stable: Traffic | None, limits: Thresholds, who: str) -> None:
    """The canary's p99 against ``max_p99_ms`` and, with ``stable``, against stable's (see the module)."""
    measured = verdict.measurements
    needed = samples_needed(TAIL_QUANTILE, limits.latency_tail_samples)
    n = sum(canary.buckets)
    p99 = _ms(TAIL_QUANTILE, canary)
    measured[f"{who}_p99_ms"] = None if p99 is None else round(p99, 2)
    if p99 is None:
        return
    if limits.max_p99_ms is not None and p99 > limits.max_p99_ms:
        over = f"{who} p99 {p99:.1f} ms over the limit {limits.max_p99_ms:g} ms"
        if n >= needed:
            verdict.add("failed", f"{over} ({n} samples)")
        else:
            verdict.add("inconclusive", f"{over}, but from {n} samples; p99 needs {needed}")
    if stable is None:
        return
    stable_p99, m = _ms(TAIL_QUANTILE, stable), sum(stable.buckets)
    if stable_p99 is None:
        return
    measured["stable_p99_ms"] = round(stable_p99, 2)
    ratio = limits.max_p99_ratio
    median, stable_median = _ms(0.5, canary), _ms(0.5, stable)
    if (
        median is not None
        and stable_median is not None
        and min(n, m) >= samples_needed(0.5, limits.latency_tail_samples)
        and p99 > limits.p99_floor_ms
        and median > stable_median * ratio
    ):
        p_value = slower_p_value(canary.buckets, stable.buckets)
        measured["latency_p_value"] = float(f"{p_value:.3g}")
        if p_value < limits.latency_alpha:
            verdict.add(
                "failed",
                f"{who} median latency {median:.1f} ms over {ratio:g}x stable's {stable_median:.1f} ms "
                f"(rank test p={p_value:.2g} from {n} and {m} samples)",
            )
            return
    if p99 > limits.p99_floor_ms and p99 > stable_p99 * ratio:
        over = f"{who} p99 {p99:.1f} ms over {ratio:g}x stable's {stable_p99:.1f} ms"
        if min(n, m) >= needed:
            verdict.add("failed", f"{over} ({n} and {m} samples)")
        else:
            verdict.add(
                "inconclusive", f"{over}, but from {n} {who} and {m} stable samples; p99 needs {needed} of each"
            )
