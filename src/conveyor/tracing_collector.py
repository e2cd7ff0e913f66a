"""Tracing that fails cheap: whether the OTLP collector answers, and no spans while it does not.

A span costs its making, batching and encoding whether or not its export can succeed, so with the
collector down a traced server paid what tracing everything costs and logged a warning per failed
batch.  ``CollectorWatch`` sees every HTTP exchange of the OTLP exporter (through the ``requests``
session it is given): a connection that fails, or an answer that says "try later" (429, 502, 503,
504), turns tracing off — ``conveyor.tracing.sampled`` then decides "not sampled" before anything
of a span is built — with one WARNING line; a probe (an empty export) re-tries the collector with
a growing delay, and its first answer turns tracing back on with one more line.  While the
collector is down the exporter's own retry warnings are held back: the two lines say it all.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Sequence
from typing import Any

import requests
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import SpanExporter, SpanExportResult

log = logging.getLogger("conveyor.tracing")

#: the exporter's logger (its retries and failures), quiet while the collector is known to be down
EXPORTER_LOGGER = "opentelemetry.exporter.otlp.proto.http.trace_exporter"
#: answers that mean "not now" (OTLP/HTTP's retryable statuses): the collector is as good as down
NOT_NOW = frozenset({429, 502, 503, 504})
FIRST_PROBE_DELAY_S = 1.0
LONGEST_PROBE_DELAY_S = 30.0
PROBE_TIMEOUT_S = 2.0


class CollectorWatch:
    """Whether the collector answers (``up``), flipped by what the exporter's session sees."""

    def __init__(self, endpoint: str) -> None:
        self.endpoint = endpoint
        self.up = True
        self.first_delay = FIRST_PROBE_DELAY_S
        self.longest_delay = LONGEST_PROBE_DELAY_S
        self._lock = threading.Lock()
        self._stopped = threading.Event()
        self._probing: threading.Thread | None = None
        self._probe: Callable[[], object] | None = None
        logging.getLogger(EXPORTER_LOGGER).addFilter(self._quiet_while_down)

    def _quiet_while_down(self, record: logging.LogRecord) -> bool:
        return self.up

    def failed(self, reason: str) -> None:
        with self._lock:
            if not self.up:
                return
            self.up = False
            log.warning(
                "tracing is off until the OTLP collector at %s answers (%s): no spans are made meanwhile",
                self.endpoint,
                reason,
            )
            self._start_probing()

    def answered(self) -> None:
        with self._lock:
            if self.up:
                return
            self.up = True
            log.warning("the OTLP collector at %s answers again: tracing is back on", self.endpoint)

    def probe_with(self, probe: Callable[[], object]) -> None:
        """What a probe sends (an empty export through the watched session): once now, then while down."""
        self._probe = probe
        with self._lock:
            self._start_probing(first_delay=0.0)

    def _start_probing(self, first_delay: float | None = None) -> None:
        if self._probe is None or (self._probing is not None and self._probing.is_alive()):
            return
        delay = self.first_delay if first_delay is None else first_delay
        self._probing = threading.Thread(target=self._probe_until_up, args=(delay,), name="otlp-probe", daemon=True)
        self._probing.start()

    def _probe_until_up(self, delay: float) -> None:
        assert self._probe is not None
        while not self._stopped.wait(delay):
            self._probe()
            if self.up:
                return
            delay = min(delay * 2, self.longest_delay) if delay else self.first_delay

    def stop(self) -> None:
        self._stopped.set()
        logging.getLogger(EXPORTER_LOGGER).removeFilter(self._quiet_while_down)


class WatchedSession(requests.Session):
    """The exporter's HTTP session, telling the watch whether the collector answered."""

    def __init__(self, watch: CollectorWatch) -> None:
        super().__init__()
        self.watch = watch

    def request(self, *args: Any, **kwargs: Any) -> requests.Response:
        try:
            response = super().request(*args, **kwargs)
        except requests.RequestException as exc:
            self.watch.failed(type(exc).__name__)
            raise
        if response.status_code in NOT_NOW:
            self.watch.failed(f"HTTP {response.status_code}")
        else:
            self.watch.answered()
        return response


class WatchedExporter(SpanExporter):
    """The OTLP exporter, dropping at once what was made before the collector went down."""

    def __init__(self, watch: CollectorWatch, exporter: OTLPSpanExporter) -> None:
        self.watch = watch
        self.exporter = exporter

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        if not self.watch.up:
            return SpanExportResult.FAILURE
        return self.exporter.export(spans)

    def shutdown(self) -> None:
        self.watch.stop()
        self.exporter.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self.exporter.force_flush(timeout_millis)


def traces_endpoint() -> str:
    """Where spans go, as the OTLP exporter resolves it from ``OTEL_EXPORTER_OTLP_[TRACES_]ENDPOINT``."""
    endpoint = os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
    if endpoint:
        return endpoint
    return os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT", "http://localhost:4318").rstrip("/") + "/v1/traces"


def watched_exporter() -> tuple[CollectorWatch, WatchedExporter]:
    """The OTLP/HTTP exporter the ``OTEL_*`` variables configure, watched, its first probe on its way."""
    watch = CollectorWatch(traces_endpoint())
    session = WatchedSession(watch)
    probe = OTLPSpanExporter(session=session, timeout=PROBE_TIMEOUT_S)
    watch.probe_with(lambda: probe.export([]))
    return watch, WatchedExporter(watch, OTLPSpanExporter(session=session))
