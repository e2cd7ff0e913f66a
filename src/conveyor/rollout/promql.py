"""PromQL for the Argo Rollouts analysis: the canary judged in a cluster as the laptop's controller judges it.

Argo Rollouts runs each ``AnalysisTemplate`` query against Prometheus and evaluates the metric's
``successCondition`` and ``failureCondition`` on ``result``, the values of the returned vector
(``metricproviders/prometheus``, ``utils/evaluate``): a failure condition that holds fails the
measurement, neither holding is *inconclusive*, and a condition that cannot be evaluated (``result[0]``
of an empty vector) is a measurement *error*.  So every query here answers one number, and:

* **NaN** where the window cannot be judged yet (too few prediction requests, too few samples
  for a p99 over its limit, too few mirrored comparisons): neither condition holds, inconclusive,
  as ``min_requests`` makes the laptop's analysis inconclusive;
* **nothing** (an empty vector) where a check does not apply (stable has too few requests to
  compare with, the canary's p99 is under the floor): the conditions read ``len(result) == 0`` as
  success, never indexing an empty result;
* **the measured value** otherwise, judged against the threshold.

Only prediction requests count (:data:`conveyor.serving.metrics.PREDICTION_ROUTES`, ``POST``):
readiness probes and Prometheus' own scrapes reach the same counters and must not make an idle
canary look healthy.  Counts are ``increase()`` over the rate window.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from conveyor.serving.metrics import PREDICTION_ROUTES

NAN = "vector(NaN)"  # "cannot be judged yet": Argo's conditions meet neither, inconclusive


def route_regex(templates: tuple[str, ...] = PREDICTION_ROUTES) -> str:
    """The route templates as one RE2 alternation; ``{name}`` matches one path segment (and itself)."""

    def one(template: str) -> str:
        parts = re.split(r"(\{[^}/]+\})", template)
        return "".join("[^/]+" if part.startswith("{") else re.escape(part) for part in parts)

    return "|".join(one(template) for template in templates)


PREDICTIONS = f'route=~"{route_regex()}",method="POST"'


@dataclass(frozen=True)
class Pods:
    """The series of one side (canary or stable) over one rate window."""

    selector: str  # a label matcher, e.g. rollouts_pod_template_hash="{{args.canary-hash}}"
    window: str  # e.g. "60s"

    def _matcher(self, extra: str = "") -> str:
        return "{" + ",".join(part for part in (self.selector, PREDICTIONS, extra) if part) + "}"

    def requests(self) -> str:
        return f"sum(increase(conveyor_requests_total{self._matcher()}[{self.window}]))"

    def errors(self) -> str:
        """Server errors among them (5xx), 0 when there were none (no such series yet)."""
        matcher = self._matcher('status=~"5.."')
        errors = f"sum(increase(conveyor_requests_total{matcher}[{self.window}]))"
        return f"({errors} or vector(0))"

    def error_rate(self, min_requests: int) -> str:
        """The error rate, or nothing with fewer than ``min_requests`` prediction requests."""
        return f"({self.errors()} / ({self.requests()} >= {min_requests}))"

    def samples(self) -> str:
        return f"sum(increase(conveyor_request_duration_seconds_count{self._matcher()}[{self.window}]))"

    def p99(self) -> str:
        buckets = f"conveyor_request_duration_seconds_bucket{self._matcher()}"
        return f"histogram_quantile(0.99, sum by (le) (rate({buckets}[{self.window}])))"

    def label_shares(self) -> str:
        rate = f"rate(conveyor_predictions_total{{{self.selector}}}[{self.window}])"
        return f"(sum by (label) ({rate}) / scalar(sum({rate})))"

    def labelled(self) -> str:
        return f"sum(increase(conveyor_predictions_total{{{self.selector}}}[{self.window}]))"


def only_if(value: str, *conditions: str) -> str:
    """``value`` where every condition (a one-element vector) holds, else nothing."""
    return " and on() ".join([f"({value})", *(f"({c})" for c in conditions)])


def judged_or_nan(value: str, limit: float, enough: list[str]) -> str:
    """``value`` judged when ``enough`` samples back it; from fewer, under ``limit`` passes and over it is NaN.

    The laptop's order-statistics rule (``rollout/analysis/latency.py``): a p99 over its limit from
    too few samples is inconclusive, never failed."""
    return f"({only_if(value, *enough)}) or (({value}) <= {limit}) or (({value}) * NaN)"


def at_most(limit: float) -> tuple[str, str]:
    """(successCondition, failureCondition): the one value at most ``limit``; empty passes, NaN neither."""
    return f"len(result) == 0 || result[0] <= {limit}", f"len(result) > 0 && result[0] > {limit}"


def at_least(limit: float) -> tuple[str, str]:
    """(successCondition, failureCondition): the one value at least ``limit``; empty passes, NaN neither."""
    return f"len(result) == 0 || result[0] >= {limit}", f"len(result) > 0 && result[0] < {limit}"
