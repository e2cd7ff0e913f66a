"""Prometheus metrics of the model server.

With several worker processes the server runs prometheus-client in
multiprocess mode (``PROMETHEUS_MULTIPROC_DIR`` is set before the workers
start), and ``/metrics`` aggregates every worker's samples, so counts stay
correct whichever worker answers the scrape.
"""

from __future__ import annotations

import os
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)

#: the route templates (the ``route`` label) whose requests carry predictions: what a canary is judged on.
#: Readiness probes, ``/metrics`` scrapes and metadata calls reach the same counters under their own
#: templates; an analysis that counted them would find an idle canary healthy (``rollout/promql.py``).
PREDICTION_ROUTES = (
    "/predict",
    "/invocations",  # MLflow's scoring protocol (mlflow_scoring.py)
    "/v2/models/{name}/infer",
    "/v2/models/{name}/versions/{version}/infer",
    "/v1/chat/completions",  # a generative version's OpenAI API (generative/app.py)
    "/v1/completions",
)

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)

REQUESTS = Counter(
    "conveyor_requests_total",
    "HTTP requests by route template and status code (499: the client closed the connection first).",
    ["model", "version", "route", "method", "status"],
)
REQUEST_LATENCY = Histogram(
    "conveyor_request_duration_seconds",
    "Time from receiving a request to sending its response.",
    ["model", "version", "route", "method"],
    buckets=LATENCY_BUCKETS,
)
QUEUE_WAIT = Histogram(
    "conveyor_queue_wait_seconds",
    "Time a request waited in the batch queue before inference started.",
    ["model", "version"],
    buckets=LATENCY_BUCKETS,
)
BATCH_SIZE = Histogram(
    "conveyor_batch_size",
    "Items (texts) per inference batch.",
    ["model", "version"],
    buckets=BATCH_BUCKETS,
)
INFERENCE_TIME = Histogram(
    "conveyor_inference_duration_seconds",
    "Time spent in tokenization and onnxruntime for one batch.",
    ["model", "version"],
    buckets=LATENCY_BUCKETS,
)
PREDICTIONS = Counter(
    "conveyor_predictions_total",
    "Predicted labels, to watch the prediction distribution.",
    ["model", "version", "label"],
)


class RequestRecorder:
    """Counts and times requests of one model version: the one place both request metrics are written.

    The label children are cached, so a request costs two dictionary lookups, not a label
    resolution per metric.
    """

    def __init__(self, model: str, version: str) -> None:
        self.labels = {"model": model, "version": version}
        self._counters: dict[tuple[str, str, int], Any] = {}
        self._latency: dict[tuple[str, str], Any] = {}

    def record(self, route: str, method: str, status: int, seconds: float) -> None:
        counter = self._counters.get((route, method, status))
        if counter is None:
            counter = REQUESTS.labels(route=route, method=method, status=str(status), **self.labels)
            self._counters[(route, method, status)] = counter
        latency = self._latency.get((route, method))
        if latency is None:
            latency = self._latency[(route, method)] = REQUEST_LATENCY.labels(route=route, method=method, **self.labels)
        counter.inc()
        latency.observe(seconds)


def render() -> tuple[bytes, str]:
    """The exposition text for a scrape, aggregated over workers when there are several."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry), CONTENT_TYPE_LATEST
    from prometheus_client import REGISTRY

    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST
