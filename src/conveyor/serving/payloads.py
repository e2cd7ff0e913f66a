"""Payload logging: a sample of what a server was asked and what it answered, off the request's path.

Compare KServe's payload logger (a CloudEvent per request to a URL) and SageMaker's data capture
(JSON Lines files in S3, sampled): what a team needs months later to see drift, to label what was
served and to retrain on it.  The request's side is one random draw and, for a sampled request,
one ``put_nowait`` of references already computed (the items, the score rows, the answers); a
writer thread does the rest: dropping and hashing fields, the size cap, JSON, the file and its
rotation, the upload.  A full queue, a full disk or an unreachable store drops records and counts
them in ``conveyor_payload_log_records_total{outcome}``; a prediction never waits for the log.

Files are JSON Lines, one record per line (``serving/payload_record.py``: a request, or the
feedback on one), under ``DEST/<model>/<version>/``; a file being
written ends in ``.partial`` and is renamed when it rotates (``rotate_bytes``/``rotate_seconds``)
or the server stops, so a reader (``conveyor monitor``) only ever sees whole files.  With an
``s3://bucket/prefix`` destination the files are spooled locally and uploaded as they rotate,
each kept until it is uploaded; a server that starts adopts what a killed one left
(``serving/payload_sinks.py``).
A generation's answer is scrubbed as its prompt is (``--log-drop answer``, ``--log-hash answer``).
What is never logged: request headers (tokens, cookies), client addresses, the raw body of a
request that failed, image pixels (their label answers are logged).
"""

from __future__ import annotations

import collections
import contextlib
import functools
import logging
import queue
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from prometheus_client import Counter

from conveyor.generative.payloads import GENERATION_ROUTES
from conveyor.serving.answered import AnsweredIndex
from conveyor.serving.payload_hash import hash_key, hash_value
from conveyor.serving.payload_record import AnswerRecord, FeedbackRecord, PayloadRecord, RequestRecord, record_time
from conveyor.serving.payload_sinks import sink_for

log = logging.getLogger(__name__)

GATHER_S = 0.05  # the writer's pause between batches: records wait at most this long to be written
MAX_BATCH = 1000
RECORDS = Counter(
    "conveyor_payload_log_records_total",
    "Payload log records by outcome: written, or dropped (queue_full, store_error, too_large).",
    ["model", "version", "outcome"],
)


@dataclass(frozen=True)
class PayloadLogConfig:
    """Where and how much to log; JSON-serialisable (worker processes receive it)."""

    destination: str  # a folder, or s3://bucket/prefix
    sample: float = 0.1  # the share of requests logged
    drop: tuple[str, ...] = ()  # input fields (columns; "text" for a text model) never written
    hash: tuple[str, ...] = ()  # input fields written as a keyed hash (joins still work, values do not leak)
    max_record_bytes: int = 64 * 1024  # a larger record keeps its answers and loses its inputs
    rotate_bytes: int = 16 * 1024 * 1024
    rotate_seconds: float = 300.0
    queue_size: int = 10_000
    drift_window: int = 500  # logged items per live drift window (gauges on /metrics); 0: none
    keep_days: float | None = None  # retention (monitoring/retention.py), applied as each file rotates
    keep_mib: float | None = None

    def __post_init__(self) -> None:
        if not 0.0 <= self.sample <= 1.0:
            raise ValueError(f"the payload log sample must be between 0 and 1, got {self.sample}")
        if self.drift_window < 0:
            raise ValueError(f"the drift window must be 0 (off) or a number of items, got {self.drift_window}")
        if self.max_record_bytes < 256 or self.rotate_bytes < 1024 or self.rotate_seconds <= 0:
            raise ValueError("the payload log's record cap (>= 256 bytes) and rotation must be positive")


@dataclass
class _Entry:
    request_id: str
    route: str
    latency_ms: float
    items: list[Any] | None
    scores: np.ndarray
    answers: list[dict[str, Any]]
    at: float = field(default_factory=time.time)


class PayloadLog:
    """One server's payload log: ``offer`` on the request path, everything else on a writer thread."""

    def __init__(
        self,
        config: PayloadLogConfig,
        model: str,
        version: str,
        *,
        logits: bool,
        classifier: bool,
        watch: Callable[[PayloadRecord], None] | None = None,
    ) -> None:
        self.config = config
        self.watch = watch  # sees each record written, on the writer thread (live drift gauges)
        self.model, self.version = model, version
        self.logits, self.classifier = logits, classifier
        self._queue: queue.Queue[_Entry | PayloadRecord | None] = queue.Queue(config.queue_size)
        self._random = random.Random()
        self._sink = sink_for(config.destination, model, version, self._count)
        self._sink.rotate_bytes, self._sink.rotate_seconds = config.rotate_bytes, config.rotate_seconds
        if not config.destination.startswith("s3://") and (config.keep_days or config.keep_mib):
            from conveyor.monitoring.retention import Retention, expire  # S3: the bucket's lifecycle rule

            limits = Retention(log_keep_days=config.keep_days, log_keep_mib=config.keep_mib)
            self._sink.rotated = functools.partial(expire, self._sink.folder, limits)
        self._hash_key = hash_key()
        self.index = AnsweredIndex(self._sink.folder)  # every answered request: what feedback joins
        self._unsampled: collections.deque[tuple[str, float, list[Any]]] = collections.deque()
        self._thread = threading.Thread(target=self._run, name="payload-log", daemon=True)
        self._counters = {
            outcome: RECORDS.labels(model=model, version=version, outcome=outcome)
            for outcome in ("written", "queue_full", "store_error", "too_large")
        }
        self._thread.start()

    # ---- the request's side -----------------------------------------------------------------

    def offer(
        self,
        request_id: str,
        route: str,
        latency_s: float,
        items: list[Any] | None,
        scores: np.ndarray,
        answers: list[dict[str, Any]],
    ) -> None:
        """Log one answered request, whole if sampled, else as its index entry; never blocks, never raises."""
        if self.sampled():
            self.index.add(request_id, len(answers))
            self._put(_Entry(request_id, route, round(latency_s * 1000, 3), items, scores, answers))
        else:
            self.offer_unsampled(request_id, answers)

    def offer_unsampled(self, request_id: str, answers: list[Any]) -> None:
        """A request the sample left out: into the index, and its ``answer`` line to the log."""
        self.index.add(request_id, len(answers))
        if len(self._unsampled) < self.config.queue_size:
            self._unsampled.append((request_id, time.time(), answers))  # an append: no lock, no wake-up
        else:
            self._counters["queue_full"].inc()

    def sampled(self) -> bool:
        """Draw whether this request is logged (``--log-sample``)."""
        return self._random.random() < self.config.sample

    def offer_record(self, record: RequestRecord) -> None:
        """Log a record already drawn (``sampled``) and made by the caller (the router's); its
        ``inputs`` are scrubbed on the writer thread as a server's are."""
        self.index.add(record.request_id, len(record.outputs))
        self._put(record)

    def _put(self, entry: _Entry | PayloadRecord) -> None:
        try:
            self._queue.put_nowait(entry)
        except queue.Full:
            self._counters["queue_full"].inc()

    def offer_feedback(self, entries: list[dict[str, Any]]) -> int:
        """Queue checked ``POST /feedback`` entries (never sampled); how many the queue took."""
        taken = 0
        stamp = record_time()
        for entry in entries:
            record = FeedbackRecord(
                time=stamp, request_id=entry["request_id"], labels=entry.get("labels"), values=entry.get("values")
            )
            try:
                self._queue.put_nowait(record)
                self.index.label(record.request_id)
                taken += 1
            except queue.Full:
                self._counters["queue_full"].inc()
        return taken

    # ---- the writer thread ------------------------------------------------------------------

    def close(self, timeout: float = 10.0) -> None:
        """Write what is queued, finish the open file (and upload it), stop the thread."""
        with contextlib.suppress(queue.Full):
            self._queue.put(None, timeout=timeout)
        self._thread.join(timeout)

    def _count(self, outcome: str, records: int = 1) -> None:
        self._counters[outcome].inc(records)

    def _run(self) -> None:
        """Wake at most every ``GATHER_S``, take what gathered: one thread wake-up (and GIL hand-over)
        per batch of records instead of per record, which a busy server's event loop feels.  First,
        finish what a killed server left (``payload_sinks``: its ``.partial`` files, its uploads)."""
        try:
            self._sink.adopt()
            self.index.refresh()  # the ids a stopped server (or another worker) answered
        except Exception:  # a folder it cannot read must not stop the log
            log.exception("payload log: cannot adopt or read the files a stopped server left")
        while True:
            try:
                batch = [self._queue.get(timeout=GATHER_S if self._unsampled else 1.0)]
            except queue.Empty:
                self._write_unsampled()
                self._sink.tick()
                continue
            with contextlib.suppress(queue.Empty):
                while len(batch) < MAX_BATCH:
                    batch.append(self._queue.get_nowait())
            self._write_unsampled()
            for entry in batch:
                if entry is None:
                    self._write_unsampled()
                    self._sink.finish()
                    return
                self._handle(entry)
            self._sink.tick()  # rotate by age under steady traffic too, not only when the queue is idle
            time.sleep(GATHER_S)

    def _handle(self, entry: _Entry | PayloadRecord) -> None:
        record: PayloadRecord | None = None
        try:
            record = self._record(entry) if isinstance(entry, _Entry) else self._scrubbed(entry)
            line = self._line(record)
        except Exception:  # a record that cannot be written must not stop the writer
            log.exception("payload log: cannot encode a record")
            line = None
        if line is None:
            self._count("too_large")
            return
        self._sink.write(line)
        if self.watch is not None and record is not None:
            self.watch(record)

    def _write_unsampled(self) -> None:
        """The index entries of the requests the sample left out, as compact ``answer`` lines."""
        while self._unsampled:
            request_id, at, answers = self._unsampled.popleft()
            record = AnswerRecord(time=record_time(at), request_id=request_id, outputs=answers)
            self._sink.write(record.json_line())
            if self.watch is not None:
                self.watch(record)

    def _record(self, entry: _Entry) -> RequestRecord:
        probabilities = None
        if self.classifier:
            scores = entry.scores.astype(np.float64)
            if self.logits:
                from conveyor.serving.model import softmax  # onnxruntime's side; a router logs no scores

                scores = softmax(scores)
            probabilities = np.round(scores, 6).tolist()
        return RequestRecord(
            time=record_time(entry.at),
            request_id=entry.request_id,
            model=self.model,
            version=self.version,
            route=entry.route,
            latency_ms=entry.latency_ms,
            inputs=None if entry.items is None else [self._scrub(item) for item in entry.items],
            outputs=entry.answers,
            probabilities=probabilities,
        )

    def _scrubbed(self, record: PayloadRecord) -> PayloadRecord:
        if isinstance(record, RequestRecord) and record.inputs is not None:
            record.inputs = [self._scrub(item) for item in record.inputs]
        if isinstance(record, RequestRecord) and record.route in GENERATION_ROUTES:  # a generation's answer too
            record.outputs = [self._scrub(item) for item in record.outputs]
        return record

    def _line(self, record: PayloadRecord) -> bytes | None:
        """The record as one JSON line, its inputs left out when over the cap (None: too large still)."""
        line = record.json_line()
        if len(line) > self.config.max_record_bytes and isinstance(record, RequestRecord) and record.inputs is not None:
            record.inputs, record.omitted = None, f"inputs over {self.config.max_record_bytes} bytes"
            line = record.json_line()
        return line if len(line) <= self.config.max_record_bytes else None

    def _scrub(self, item: Any) -> Any:
        if isinstance(item, dict):
            return {
                key: self._hashed(value) if key in self.config.hash else value
                for key, value in item.items()
                if key not in self.config.drop
            }
        if isinstance(item, str):
            if "text" in self.config.drop:
                return None
            return self._hashed(item) if "text" in self.config.hash else item
        return item

    def _hashed(self, value: Any) -> str:
        return hash_value(value, self._hash_key)
