"""Analysis of one window: metric checks each answer successful, failed or inconclusive.

The providers are deliberately small (compare Flagger's metric providers): router
traffic (error rate and p99, absolute and relative to stable), prediction
agreement on mirrored traffic (plus the share of each label), and the
verification contract run against the canary's own address. Missing data is
inconclusive, never a failure; a provider that cannot measure raises
:class:`MeasurementError`, which the controller tolerates up to a limit.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from conveyor.rollout.stats import LIVE, MIRROR, quantile
from conveyor.rollout.status import Outcome, Thresholds
from conveyor.verify.contract import Contract
from conveyor.verify.runner import check_server, with_v2_model

RANK: dict[str, int] = {"successful": 0, "inconclusive": 1, "failed": 2}
ERROR_CODES = ("connect_error", "connection_lost", "timeout", "backend_error")


class MeasurementError(Exception):
    """A provider could not measure (router unreachable, its counters reset): not the canary's fault."""


@dataclass
class Verdict:
    outcome: Outcome = "successful"
    measurements: dict[str, Any] = field(default_factory=dict)
    reasons: list[str] = field(default_factory=list)

    def add(self, outcome: Outcome, reason: str | None = None) -> None:
        if RANK[outcome] > RANK[self.outcome]:
            self.outcome = outcome
        if reason:
            self.reasons.append(f"{outcome}: {reason}")


@dataclass
class Traffic:
    requests: int = 0
    errors: int = 0
    buckets: list[int] = field(default_factory=list)
    labels: dict[str, int] = field(default_factory=dict)

    @property
    def error_rate(self) -> float:
        return self.errors / self.requests if self.requests else math.nan

    def p99_ms(self) -> float | None:
        value = quantile(0.99, self.buckets) if self.buckets else None
        return None if value is None else value * 1000

    def label_shares(self) -> dict[str, float]:
        total = sum(self.labels.values())
        return {label: round(count / total, 4) for label, count in sorted(self.labels.items())} if total else {}


def _is_error(code: str) -> bool:
    return code in ERROR_CODES or (code.isdigit() and int(code) >= 500)


def window_traffic(before: dict[str, Any], after: dict[str, Any], backend: str, version: str, kind: str) -> Traffic:
    """What one backend answered between two router snapshots (counters only grow within one instance)."""
    if before.get("instance") != after.get("instance"):
        raise MeasurementError("the router restarted during the window (its counters were reset)")

    def find(snapshot: dict[str, Any]) -> dict[str, Any] | None:
        return next(
            (
                t
                for t in snapshot.get("traffic", [])
                if t["backend"] == backend and t["version"] == version and t["kind"] == kind
            ),
            None,
        )

    now, then = find(after), find(before)
    if now is None:
        return Traffic(buckets=[0] * len(after.get("buckets", [])))
    then = then or {"requests": 0, "codes": {}, "buckets": [0] * len(now["buckets"]), "labels": {}}
    codes = {code: now["codes"].get(code, 0) - then["codes"].get(code, 0) for code in now["codes"]}
    return Traffic(
        requests=now["requests"] - then["requests"],
        errors=sum(count for code, count in codes.items() if _is_error(code)),
        buckets=[a - b for a, b in zip(now["buckets"], then["buckets"], strict=True)],
        labels={k: v - then["labels"].get(k, 0) for k, v in now["labels"].items() if v - then["labels"].get(k, 0)},
    )


def window_comparisons(before: dict[str, Any], after: dict[str, Any], backend: str, version: str) -> tuple[int, int]:
    """(agreed, disagreed) mirrored comparisons for the backend inside the window."""

    def find(snapshot: dict[str, Any]) -> dict[str, int]:
        for item in snapshot.get("comparisons", []):
            if item["backend"] == backend and item["version"] == version:
                return item
        return {"agreed": 0, "disagreed": 0}

    now, then = find(after), find(before)
    return now["agreed"] - then["agreed"], now["disagreed"] - then["disagreed"]


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
    stable_known = stable is not None and stable.requests >= limits.min_requests
    if stable_known:
        measured["stable_error_rate"] = round(stable.error_rate, 4)
    if rate > limits.max_error_rate:
        verdict.add("failed", f"{who} error rate {rate:.1%} over the limit {limits.max_error_rate:.1%}")
    elif stable_known and rate > stable.error_rate + limits.max_error_rate_increase and canary.errors >= 2:
        verdict.add(
            "failed",
            f"{who} error rate {rate:.1%} exceeds stable's {stable.error_rate:.1%} "
            f"by more than {limits.max_error_rate_increase:.1%}",
        )
    p99 = canary.p99_ms()
    measured[f"{who}_p99_ms"] = None if p99 is None else round(p99, 2)
    stable_p99 = stable.p99_ms() if stable_known else None
    if stable_p99 is not None:
        measured["stable_p99_ms"] = round(stable_p99, 2)
    if p99 is not None and limits.max_p99_ms is not None and p99 > limits.max_p99_ms:
        verdict.add("failed", f"{who} p99 {p99:.1f} ms over the limit {limits.max_p99_ms:g} ms")
    elif (
        p99 is not None
        and stable_p99 is not None
        and p99 > limits.p99_floor_ms
        and p99 > stable_p99 * limits.max_p99_ratio
    ):
        verdict.add("failed", f"{who} p99 {p99:.1f} ms over {limits.max_p99_ratio:g}x stable's {stable_p99:.1f} ms")


def judge_agreement(verdict: Verdict, agreed: int, disagreed: int, limits: Thresholds) -> None:
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


def judge_contract(verdict: Verdict, url: str, contract: Contract, model_name: str | None) -> None:
    """The verification contract against the canary's own address (latency is left to the traffic analysis)."""
    try:
        results = check_server(url, with_v2_model(contract, model_name), skip=["latency.p95"], parallel=4)
    except Exception as exc:  # the checks themselves could not run: a measurement problem, not a verdict
        raise MeasurementError(f"the contract checks could not run: {exc}") from exc
    failed = [r for r in results if r.status == "failed"]
    verdict.measurements["contract"] = {
        "passed": sum(r.status == "passed" for r in results),
        "failed": [r.id for r in failed],
    }
    for result in failed:
        verdict.add("failed", f"contract check {result.id}: {result.message}")


def analyse(
    *,
    stage: str,
    before: dict[str, Any],
    after: dict[str, Any],
    stable: tuple[str, str],
    canary: tuple[str, str],
    canary_url: str,
    limits: Thresholds,
    contract: Contract | None,
    model_name: str | None,
) -> Verdict:
    """One analysis run. ``stage``: canary (live split), pre-promotion (mirrored only), post-promotion (all live)."""
    verdict = Verdict()
    if stage == "pre-promotion":
        judge_traffic(verdict, window_traffic(before, after, *canary, MIRROR), None, limits, "mirrored")
    elif stage == "post-promotion":
        judge_traffic(verdict, window_traffic(before, after, *canary, LIVE), None, limits, "canary")
    else:
        judge_traffic(
            verdict,
            window_traffic(before, after, *canary, LIVE),
            window_traffic(before, after, *stable, LIVE),
            limits,
            "canary",
        )
    if stage != "post-promotion" and limits.mirror_percent > 0:
        judge_agreement(verdict, *window_comparisons(before, after, *canary), limits)
    if contract is not None and limits.contract:
        judge_contract(verdict, canary_url, contract, model_name)
    return verdict
