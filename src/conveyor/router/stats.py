"""Per-backend traffic statistics kept by the router.

One source of truth, read two ways: as JSON snapshots by the rollout controller
(which subtracts two snapshots to analyse a time window, the way Prometheus'
``increase()`` would) and as Prometheus metrics through :class:`StatsCollector`.
Counters only grow; a router restart shows up as a new ``instance`` id.
"""

from __future__ import annotations

import bisect
import math
import time
import uuid
from collections import Counter, deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

# Upper bounds in seconds: fine around typical model latencies so p99 is estimated well.
LATENCY_BUCKETS: tuple[float, ...] = (
    0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.03, 0.05, 0.075, 0.1, 0.15,
    0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0, 30.0, math.inf,
)  # fmt: skip

#: a regressor's latest answers (and each input feature's latest numbers) kept per backend: enough
#: for a two-sample test per analysis window
VALUES_KEPT = 1000

#: a generative backend's latest answers (texts), and mirrored pairs, kept: enough for one analysis window
ANSWERS_KEPT = 200

LIVE = "live"
MIRROR = "mirror"


@dataclass
class TrafficStats:
    """Requests one backend answered for one kind of traffic (live or mirrored)."""

    requests: int = 0
    codes: Counter[str] = field(default_factory=Counter)  # "200", "500", "connect_error", "timeout"...
    buckets: list[int] = field(default_factory=lambda: [0] * len(LATENCY_BUCKETS))
    latency_sum: float = 0.0
    labels: Counter[str] = field(default_factory=Counter)
    values: deque[float] = field(default_factory=lambda: deque(maxlen=VALUES_KEPT))  # the latest answers
    values_seen: int = 0  # every value ever answered: two snapshots tell which of ``values`` are new
    inputs: dict[str, deque[float]] = field(default_factory=dict)  # the latest input numbers per feature
    inputs_seen: dict[str, int] = field(default_factory=dict)  # likewise, per feature
    answers: deque[str] = field(default_factory=lambda: deque(maxlen=ANSWERS_KEPT))  # a generative version's
    answers_seen: int = 0

    def observe(
        self,
        code: str,
        seconds: float,
        labels: list[str] | None = None,
        values: list[float] | None = None,
        answer: str | None = None,
    ) -> None:
        self.requests += 1
        self.codes[code] += 1
        self.buckets[bisect.bisect_left(LATENCY_BUCKETS, seconds)] += 1
        self.latency_sum += seconds
        if labels:
            self.labels.update(labels)
        if values:
            self.values.extend(values)
            self.values_seen += len(values)
        if answer is not None:
            self.answers.append(answer)
            self.answers_seen += 1

    def observe_inputs(self, features: dict[str, list[float]]) -> None:
        """A request's input numbers (``router/inputs.py``), kept while a canary splits traffic."""
        for name, numbers in features.items():
            kept = self.inputs.get(name)
            if kept is None:
                kept = self.inputs[name] = deque(maxlen=VALUES_KEPT)
            kept.extend(numbers)
            self.inputs_seen[name] = self.inputs_seen.get(name, 0) + len(numbers)

    def to_json(self) -> dict[str, Any]:
        document: dict[str, Any] = {
            "requests": self.requests,
            "codes": dict(self.codes),
            "buckets": list(self.buckets),
            "latency_sum": self.latency_sum,
            "labels": dict(self.labels),
        }
        if self.values_seen:
            document.update(values_seen=self.values_seen, values=list(self.values))
        if self.inputs_seen:
            document.update(inputs_seen=dict(self.inputs_seen), inputs={k: list(v) for k, v in self.inputs.items()})
        if self.answers_seen:
            document.update(answers_seen=self.answers_seen, answers=list(self.answers))
        return document


@dataclass
class Comparison:
    """Mirrored requests whose answers were compared with the primary backend's."""

    agreed: int = 0
    disagreed: int = 0
    dropped: int = 0  # mirrors skipped because too many were in flight
    #: a generative version's answers are not agreed or not: (stable's answer, the mirror's) to the same prompt
    pairs: deque[tuple[str, str]] = field(default_factory=lambda: deque(maxlen=ANSWERS_KEPT))
    pairs_seen: int = 0

    def to_json(self) -> dict[str, Any]:
        document: dict[str, Any] = {"agreed": self.agreed, "disagreed": self.disagreed, "dropped": self.dropped}
        if self.pairs_seen:
            document.update(pairs_seen=self.pairs_seen, pairs=[list(pair) for pair in self.pairs])
        return document


class RouterStats:
    """All counters of one router process, keyed by (backend name, version)."""

    def __init__(self) -> None:
        self.instance = uuid.uuid4().hex
        self.started_at = time.time()
        self.traffic: dict[tuple[str, str, str], TrafficStats] = {}
        self.comparisons: dict[tuple[str, str], Comparison] = {}
        self.retries: Counter[tuple[str, str]] = Counter()

    def of(self, backend: str, version: str, kind: str = LIVE) -> TrafficStats:
        key = (backend, version, kind)
        stats = self.traffic.get(key)
        if stats is None:
            stats = self.traffic[key] = TrafficStats()
        return stats

    def comparison(self, backend: str, version: str) -> Comparison:
        key = (backend, version)
        found = self.comparisons.get(key)
        if found is None:
            found = self.comparisons[key] = Comparison()
        return found

    def snapshot(self) -> dict[str, Any]:
        return {
            "instance": self.instance,
            "started_at": self.started_at,
            "at": time.time(),
            "buckets": [b if b != math.inf else "+Inf" for b in LATENCY_BUCKETS],
            "traffic": [
                {"backend": b, "version": v, "kind": k, **s.to_json()} for (b, v, k), s in self.traffic.items()
            ],
            "comparisons": [{"backend": b, "version": v, **c.to_json()} for (b, v), c in self.comparisons.items()],
            "retries": [{"backend": b, "version": v, "count": n} for (b, v), n in self.retries.items()],
        }


def quantile(q: float, buckets: list[int]) -> float | None:
    """Estimate a quantile (seconds) from bucket counts, interpolating inside a bucket like histogram_quantile."""
    total = sum(buckets)
    if total == 0:
        return None
    rank = q * total
    seen = 0
    for index, count in enumerate(buckets):
        if count and seen + count >= rank:
            upper = LATENCY_BUCKETS[index]
            lower = LATENCY_BUCKETS[index - 1] if index else 0.0
            if upper == math.inf:
                return lower
            return lower + (upper - lower) * ((rank - seen) / count)
        seen += count
    return LATENCY_BUCKETS[-2]


class StatsCollector:
    """Expose RouterStats (and the routing table) to prometheus_client without double bookkeeping."""

    def __init__(self, stats: RouterStats, describe_backends: Callable[[], list[tuple[str, str, float, bool]]]) -> None:
        self.stats = stats
        self.describe_backends = describe_backends  # (name, version, weight, healthy) of each backend

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily

        labels = ["backend", "version", "traffic"]
        requests = CounterMetricFamily(
            "conveyor_router_requests",
            "Requests proxied, by backend, traffic kind and status.",
            labels=[*labels, "code"],
        )
        latency = HistogramMetricFamily(
            "conveyor_router_request_duration_seconds", "Backend answer time seen by the router.", labels=labels
        )
        predictions = CounterMetricFamily(
            "conveyor_router_predictions", "Predicted labels in backend answers.", labels=[*labels, "label"]
        )
        for (backend, version, kind), traffic in list(self.stats.traffic.items()):
            for code, count in traffic.codes.items():
                requests.add_metric([backend, version, kind, code], count)
            cumulative, running = [], 0
            for bound, count in zip(LATENCY_BUCKETS, traffic.buckets, strict=True):
                running += count
                cumulative.append(("+Inf" if bound == math.inf else repr(bound), running))
            latency.add_metric([backend, version, kind], cumulative, traffic.latency_sum)
            for label, count in traffic.labels.items():
                predictions.add_metric([backend, version, kind, label], count)
        comparisons = CounterMetricFamily(
            "conveyor_router_mirror_comparisons",
            "Mirrored answers compared with the primary backend's answer.",
            labels=["backend", "version", "result"],
        )
        for (backend, version), comparison in list(self.stats.comparisons.items()):
            comparisons.add_metric([backend, version, "agree"], comparison.agreed)
            comparisons.add_metric([backend, version, "disagree"], comparison.disagreed)
            comparisons.add_metric([backend, version, "dropped"], comparison.dropped)
        retries = CounterMetricFamily(
            "conveyor_router_retries", "Requests retried on another backend after a failed connection.",
            labels=["backend", "version"],
        )  # fmt: skip
        for (backend, version), count in list(self.stats.retries.items()):
            retries.add_metric([backend, version], count)
        pair = ["backend", "version"]
        weight = GaugeMetricFamily("conveyor_router_backend_weight", "Traffic weight (percent).", labels=pair)
        healthy = GaugeMetricFamily("conveyor_router_backend_healthy", "1 while health checks pass.", labels=pair)
        for name, version, share, ok in self.describe_backends():
            weight.add_metric([name, version], share)
            healthy.add_metric([name, version], 1.0 if ok else 0.0)
        yield from (requests, latency, predictions, comparisons, retries, weight, healthy)
