"""Traffic over time for the dashboard: router snapshots sampled about once a second, per service.

The router keeps only counters (``router/stats.py``); a rate, an error rate or a p99 needs two
snapshots. A ``Sampler`` keeps the last few minutes of them in memory, shared by every browser
watching the service, and turns consecutive pairs into per-backend points for the charts, with
the same window arithmetic the analysis uses (``rollout.analysis.metric.window_traffic``).
"""

from __future__ import annotations

import itertools
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from conveyor.rollout.analysis.metric import MeasurementError, window_comparisons, window_traffic
from conveyor.rollout.router_client import RouterClient
from conveyor.rollout.status import RolloutStatus
from conveyor.router.stats import LIVE, quantile

KEEP_S = 300.0  # history kept per service
EVERY_S = 1.0  # at most one router request per service per second, however many pages watch
SHARE_WINDOW_S = 10.0  # the actual traffic share is over the last seconds, not one noisy second


@dataclass
class Point:
    at: float
    requests_per_s: float
    error_rate: float | None
    p50_ms: float | None
    p99_ms: float | None
    requests: int


@dataclass
class Live:
    """What the page shows beside the persisted status: actual traffic shares, per-backend series."""

    reachable: bool = True
    error: str | None = None
    series: dict[str, list[Point]] = field(default_factory=dict)  # "stable"/"canary" -> points
    actual_share: dict[str, float] = field(default_factory=dict)  # of the last interval, in percent
    agreement: tuple[int, int] | None = None  # (agreed, disagreed) mirrored answers in the history kept


class Sampler:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._history: dict[str, deque[dict[str, Any]]] = {}
        self._errors: dict[str, str | None] = {}

    def sample(self, service: str, router_url: str) -> None:
        """Take a snapshot of the service's router unless one was taken less than a second ago."""
        with self._lock:
            history = self._history.setdefault(service, deque())
            if history and time.time() - history[-1]["at"] < EVERY_S:
                return
        client = RouterClient(router_url, timeout=2.0)
        try:
            snapshot = client.stats()
            error = None
        except MeasurementError as exc:
            snapshot, error = None, str(exc)
        finally:
            client.close()
        with self._lock:
            self._errors[service] = error
            if snapshot is None:
                return
            if history and history[-1].get("instance") != snapshot.get("instance"):
                history.clear()  # the router restarted: its counters began again
            history.append(snapshot)
            while history and snapshot["at"] - history[0]["at"] > KEEP_S:
                history.popleft()

    def live(self, status: RolloutStatus) -> Live:
        with self._lock:
            history = list(self._history.get(status.service, ()))
            error = self._errors.get(status.service)
        result = Live(reachable=error is None, error=error)
        serving = status.serving()  # the history is one router instance: windows never straddle a restart
        result.series = {role: [] for role in serving}
        for before, after in itertools.pairwise(history):
            seconds = max(after["at"] - before["at"], 1e-6)
            for role, version in serving.items():
                traffic = window_traffic(before, after, role, version, LIVE)
                p50 = quantile(0.5, traffic.buckets) if traffic.requests else None
                result.series[role].append(
                    Point(
                        at=after["at"],
                        requests_per_s=traffic.requests / seconds,
                        error_rate=traffic.error_rate if traffic.requests else None,
                        p50_ms=None if p50 is None else p50 * 1000,
                        p99_ms=traffic.p99_ms() if traffic.requests else None,
                        requests=traffic.requests,
                    )
                )
        since = (history[-1]["at"] - SHARE_WINDOW_S) if history else 0.0
        recent = {role: sum(p.requests for p in points if p.at > since) for role, points in result.series.items()}
        total = sum(recent.values())
        if total:
            result.actual_share = {role: 100.0 * count / total for role, count in recent.items()}
        if len(history) >= 2 and "canary" in serving:
            result.agreement = window_comparisons(history[0], history[-1], "canary", serving["canary"])
        return result


SAMPLER = Sampler()
