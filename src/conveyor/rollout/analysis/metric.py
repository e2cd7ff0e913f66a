"""What an analysis metric is: a small plug-in that measures one window and gives a verdict.

Compare Flagger's metric providers: one interface, one file per provider.  A metric declares
the thresholds it reads (keys of a rollout's :class:`~conveyor.rollout.analysis.thresholds.Thresholds`,
checked when a rollout uses them; ``rollout:`` keys in conveyor.yaml and ``conveyor rollout start``
options), measures a :class:`AnalysisWindow` into a :class:`Verdict`, and may say what it becomes in an Argo Rollouts
``AnalysisTemplate``.  The controller, the CLI, the status view and the export all read the
same table, so a new metric is one new module in :mod:`conveyor.rollout.analysis.metrics`.

Missing data is inconclusive, never a failure; a metric that cannot measure raises
:class:`MeasurementError`, which the controller tolerates up to a limit.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from conveyor.router.stats import LIVE, quantile

if TYPE_CHECKING:
    from conveyor.rollout.analysis.expectation import ExpectedAgreement
    from conveyor.rollout.analysis.thresholds import Thresholds
    from conveyor.verify.contract import Contract

Outcome = Literal["successful", "failed", "inconclusive", "error"]
#: the rollout stages an analysis window is measured in (see ``rollout.status.Stage``)
AnalysedStage = Literal["canary", "pre-promotion", "post-promotion"]
RANK: dict[str, int] = {"successful": 0, "inconclusive": 1, "failed": 2}
ERROR_CODES = ("connect_error", "connection_lost", "timeout", "backend_error")


class MeasurementError(Exception):
    """A metric could not measure (router unreachable, its counters reset): not the canary's fault."""


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
    values: list[float] = field(default_factory=list)  # a regressor's answers in the window (the latest kept)
    inputs: dict[str, list[float]] = field(default_factory=dict)  # input numbers per feature, likewise
    answers: list[str] = field(default_factory=list)  # a generative version's answers (texts), likewise

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
        values=_fresh(now.get("values", []), now.get("values_seen", 0), then.get("values_seen", 0)),
        inputs={
            name: fresh
            for name, kept in (now.get("inputs") or {}).items()
            if (fresh := _fresh(kept, now["inputs_seen"].get(name, 0), (then.get("inputs_seen") or {}).get(name, 0)))
        },
        answers=_fresh(now.get("answers", []), now.get("answers_seen", 0), then.get("answers_seen", 0)),
    )


def _fresh(kept: list[Any], seen_now: int, seen_then: int) -> list[Any]:
    """The numbers noted inside the window: the newest ``seen`` difference of the kept ones."""
    fresh = seen_now - seen_then
    return list(kept[-fresh:]) if fresh > 0 else []


def window_comparisons(before: dict[str, Any], after: dict[str, Any], backend: str, version: str) -> tuple[int, int]:
    """(agreed, disagreed) mirrored comparisons for the backend inside the window."""

    def find(snapshot: dict[str, Any]) -> dict[str, int]:
        for item in snapshot.get("comparisons", []):
            if item["backend"] == backend and item["version"] == version:
                return item
        return {"agreed": 0, "disagreed": 0}

    now, then = find(after), find(before)
    return now["agreed"] - then["agreed"], now["disagreed"] - then["disagreed"]


def window_pairs(before: dict[str, Any], after: dict[str, Any], backend: str, version: str) -> list[tuple[str, str]]:
    """A generative version's mirrored answers inside the window: (stable's answer, the mirror's), same prompt."""

    def find(snapshot: dict[str, Any]) -> dict[str, Any]:
        return next(
            (c for c in snapshot.get("comparisons", []) if c["backend"] == backend and c["version"] == version), {}
        )

    now, then = find(after), find(before)
    fresh = _fresh(now.get("pairs", []), now.get("pairs_seen", 0), then.get("pairs_seen", 0))
    return [(str(stable), str(mirror)) for stable, mirror in fresh]


@dataclass
class AnalysisWindow:
    """One analysis window: two router snapshots and what the rollout knows about its backends.

    ``stage``: canary (live split), pre-promotion (mirrored only), post-promotion (all live).
    """

    stage: AnalysedStage
    before: dict[str, Any]
    after: dict[str, Any]
    stable: tuple[str, str]  # (backend name, version)
    canary: tuple[str, str]
    canary_url: str
    limits: Thresholds  # the rollout's
    contract: Contract | None = None  # the verification contract
    model_name: str | None = None
    expected_agreement: ExpectedAgreement | None = None  # measured at start on the reference sample
    stable_url: str = ""

    @property
    def generative(self) -> bool:
        """The canary answered generations (texts, compared by meaning, not labels) in this router's life."""
        name, version = self.canary
        traffic = [t for t in self.after.get("traffic", []) if t["backend"] == name and t["version"] == version]
        return any(t.get("answers_seen") for t in traffic) or any(
            c.get("pairs_seen") for c in self.after.get("comparisons", []) if c["backend"] == name
        )

    def traffic(self, which: Literal["canary", "stable"], kind: str = LIVE) -> Traffic:
        backend = self.canary if which == "canary" else self.stable
        return window_traffic(self.before, self.after, *backend, kind)


@dataclass(frozen=True)
class Threshold:
    """One setting a metric reads: a ``Thresholds`` key, a conveyor.yaml key and a CLI option."""

    name: str
    type: type
    default: Any
    help: str
    ge: float | None = None
    le: float | None = None
    gt: float | None = None
    optional: bool = False  # None is allowed (and means: this limit is off)


@dataclass(frozen=True)
class ArgoContext:
    """What an Argo Rollouts ``AnalysisTemplate`` metric can refer to."""

    name: str  # the rollout (and its services) in the cluster
    image: str
    interval: str  # between measurements, e.g. "30s"
    window: str  # the Prometheus rate window, e.g. "60s"
    canary: str  # Prometheus label matcher of the canary pods
    stable: str  # ... and of the stable pods
    prometheus: str  # the Prometheus address
    contract: bool  # a contract ConfigMap is part of the export
    router_job: str | None = None  # the Prometheus job scraping Conveyor's router in front of the pods, if any


class Metric(ABC):
    """Subclass, set ``name``, ``summary`` and ``thresholds``, implement ``measure``; decorate with @metric."""

    name: str = ""
    summary: str = ""
    order: int = 50  # where its verdicts come in an analysis (lower first)
    thresholds: tuple[Threshold, ...] = ()
    #: measurement keys the status view shows for this metric (others are kept in the record)
    shown: tuple[str, ...] = ()

    def applies(self, window: AnalysisWindow) -> bool:
        """Whether to measure this window at all (a limit turned off, a stage it has no data for)."""
        return True

    @abstractmethod
    def measure(self, window: AnalysisWindow, verdict: Verdict) -> None:
        """Measure ``window`` into ``verdict`` (its outcome, measurements and reasons)."""

    def argo(self, limits: Any, ctx: ArgoContext) -> list[dict[str, Any]]:
        """Its Argo Rollouts AnalysisTemplate metrics (none: it has no cluster counterpart)."""
        return []


_METRICS: dict[str, Metric] = {}


def metric(cls: type[Metric]) -> type[Metric]:
    """Register a Metric subclass (one instance) under its ``name``."""
    if not cls.name or cls.name in _METRICS:
        raise ValueError(f"metric {cls.name!r} needs a unique name")
    _METRICS[cls.name] = cls()
    return cls


def registered() -> dict[str, Metric]:
    return _METRICS
