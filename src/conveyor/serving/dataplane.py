"""The protocol-independent data plane: readiness, prediction and inference.

Routes in ``app.py`` parse HTTP and call these methods; nothing here knows
about HTTP beyond raising ``ClientError`` with a status.  What differs between
tasks (text, tabular, image, raw tensors) is the task server's (``tasks/``);
what they share, the model's lifecycle, the batcher and the prediction metrics,
is here.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from conveyor import __version__, tracing
from conveyor.errors import Conflict, NotFound, NotReady
from conveyor.serving import metrics
from conveyor.serving.batching import Batcher, BatchStats
from conveyor.serving.feedback import checked_entries, feedback_items, judge, locate
from conveyor.serving.payload_record import PayloadRecord
from conveyor.serving.payloads import PayloadLog, PayloadLogConfig
from conveyor.serving.runtime import RuntimeOptions
from conveyor.serving.spec import ResolvedModel
from conveyor.serving.tasks import TaskServer, server_for
from conveyor.serving.v2 import DecodedRequest, encode_response
from conveyor.tracing import BatchTrace

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ServingOptions:
    """Limits and batching knobs of one server."""

    max_batch_size: int = 32
    max_batch_wait_ms: float = 0.0
    parallel_batches: int = 1
    max_body_bytes: int = 1_000_000
    max_items: int = 256
    runtime: RuntimeOptions = field(default_factory=RuntimeOptions)
    payload_log: PayloadLogConfig | None = None


class DataPlane:
    """Serves one model version."""

    def __init__(
        self,
        resolved: ResolvedModel,
        options: ServingOptions,
        watch: Callable[[PayloadRecord], None] | None = None,
    ) -> None:
        self.resolved = resolved
        self.watch = watch  # sees each payload log record on the log's thread (the live drift gauges)
        self.spec = resolved.spec
        self.options = options
        self.state = "loading"
        self.error: str | None = None
        self.task: TaskServer = server_for(resolved, options)
        self._batcher: Batcher[Any, np.ndarray] | None = None
        self._metric_labels = {"model": self.spec.name, "version": self.spec.version}
        self.payloads: PayloadLog | None = None

    # ---- lifecycle -------------------------------------------------------------------------

    async def load(self) -> None:
        """Load the session (and tokenizer) off the event loop, warm up, then become ready."""
        started = time.monotonic()
        try:
            await asyncio.to_thread(self.task.load)
        except Exception as exc:
            self.state = "failed"
            self.error = str(exc)
            log.error("model %s failed to load: %s", self.spec.name, exc)
            raise
        batcher: Batcher[Any, np.ndarray] = Batcher(
            self.task.score,
            max_batch_size=self.options.max_batch_size,
            max_wait=self.options.max_batch_wait_ms / 1000,
            on_batch=self._record_batch,
            parallel_batches=self.options.parallel_batches,
        )
        batcher.start()
        self._batcher = batcher
        if self.options.payload_log is not None:
            self.payloads = PayloadLog(
                self.options.payload_log,
                self.spec.name,
                self.spec.version,
                logits=self.task.scores_are_logits,
                classifier=self.task.classifier,
                watch=self.watch,
            )
        self.state = "ready"
        log.info("model %s:%s ready in %.1fs", self.spec.name, self.spec.version, time.monotonic() - started)

    async def close(self) -> None:
        if self._batcher is not None:
            await self._batcher.close()
        if self.payloads is not None:
            await asyncio.to_thread(self.payloads.close)
        if self.state != "failed":
            self.state = "stopped"

    @property
    def ready(self) -> bool:
        return self.state == "ready"

    def _require_ready(self) -> Batcher[Any, np.ndarray]:
        if self.state != "ready" or self._batcher is None:
            raise NotReady(f"model {self.spec.name!r} is not ready yet ({self.state})")
        return self._batcher

    def check_model(self, name: str, version: str | None) -> None:
        if name != self.spec.name:
            raise NotFound(f"model {name!r} not found; this server serves {self.spec.name!r}")
        if version is not None and version != self.spec.version:
            raise NotFound(
                f"version {version!r} of model {name!r} not found; this server serves version {self.spec.version!r}"
            )

    def _record_batch(self, stats: BatchStats) -> None:
        labels = self._metric_labels
        metrics.BATCH_SIZE.labels(**labels).observe(stats.size)
        metrics.INFERENCE_TIME.labels(**labels).observe(stats.inference_seconds)
        wait = metrics.QUEUE_WAIT.labels(**labels)
        for seconds in stats.queue_waits:
            wait.observe(seconds)

    # ---- prediction ------------------------------------------------------------------------

    async def score(self, items: list[Any]) -> np.ndarray:
        """One row of scores per item through the batcher, counted per winning label (and traced, when on)."""
        batcher = self._require_ready()
        if tracing.ENABLED and tracing.current_span() is not None:  # a sampled request: time its batch
            trace = BatchTrace()
            scores = np.stack(await batcher.submit(items, trace))
            tracing.draw_batch(trace)
        else:
            scores = np.stack(await batcher.submit(items))
        if self.task.classifier:
            self._count_predictions(scores)
        return scores

    async def _run_alone(self, call: Any) -> Any:
        return await self._require_ready().run_alone(call)

    def _count_predictions(self, scores: np.ndarray) -> None:
        winners = scores.argmax(axis=1)
        for index, count in zip(*np.unique(winners, return_counts=True), strict=True):
            metrics.PREDICTIONS.labels(label=self.spec.labels[index], **self._metric_labels).inc(int(count))

    def parse_predict(self, body: bytes, content_type: str | None = None) -> list[Any]:
        """The classic body, checked by the model's task: texts, records or images."""
        self._require_ready()
        return self.task.parse_predict(body, content_type)

    async def predict(self, items: list[Any]) -> list[dict[str, Any]]:
        """The classic answer per item (``{"positive": true}`` for the seed's text model)."""
        return self.task.answers(await self.score(items))

    def log_payload(
        self, request_id: str, route: str, seconds: float, items: list[Any], scores: np.ndarray, answers: list[Any]
    ) -> None:
        """Offer an answered request to the payload log (sampled there; never blocks)."""
        if self.payloads is not None:
            self.payloads.offer(request_id, route, seconds, self.task.logged_inputs(items), scores, answers)

    async def feedback(self, body: bytes) -> dict[str, Any]:
        """``POST /feedback``: checked entries into the payload log, beside the requests they answer
        (``serving/feedback.py``: accepted, duplicate or unknown, per entry)."""
        payloads = self.payloads
        if payloads is None:
            raise Conflict("this server keeps no payload log to join feedback with: serve it with --log-payloads DEST")
        checked = checked_entries(feedback_items(body), self.spec.labels, self.spec.task.regression)

        def find(request_id: str) -> PayloadLog | None:
            return payloads if payloads.index.items(request_id) is not None else None

        await locate([entry["request_id"] for _, entry, _ in checked], find, payloads.index.refresh)
        return judge(checked, find)

    async def infer(
        self, request: DecodedRequest, request_id: str = "", route: str = "", started: float | None = None
    ) -> tuple[bytes, dict[str, str]]:
        """A v2 inference; its items and answers go to the payload log as ``/predict``'s do."""
        self._require_ready()
        scored: list[tuple[list[Any], np.ndarray]] = []

        async def score(items: list[Any]) -> np.ndarray:
            scores = await self.score(items)
            scored.append((items, scores))
            return scores

        outputs = await self.task.infer(request, score if self.payloads is not None else self.score, self._run_alone)
        encoded = encode_response(self.spec.name, self.spec.version, request, outputs)
        if scored:  # raw tensors (run alone) have no items to log
            items = [item for batch, _ in scored for item in batch]
            scores = np.concatenate([rows for _, rows in scored])
            seconds = time.perf_counter() - started if started is not None else 0.0
            self.log_payload(request_id, route, seconds, items, scores, self.task.answers(scores))
        return encoded

    # ---- metadata --------------------------------------------------------------------------

    def server_metadata(self) -> dict[str, Any]:
        return {"name": "conveyor", "version": __version__, "extensions": ["binary_tensor_data", "model_repository"]}

    def repository_index(self) -> list[dict[str, Any]]:
        state = "READY" if self.ready else ("UNAVAILABLE" if self.state == "failed" else "LOADING")
        return [{"name": self.spec.name, "version": self.spec.version, "state": state}]

    def model_metadata(self) -> dict[str, Any]:
        meta: dict[str, Any] = {
            "name": self.spec.name,
            "versions": [self.spec.version],
            "platform": "onnxruntime_onnx",
        }
        meta.update(self.task.metadata())
        return meta
