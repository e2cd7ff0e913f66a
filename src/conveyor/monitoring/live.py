"""Drift and live quality while serving: the payload log's records, judged window by window, as gauges.

``conveyor monitor`` judges a log after the fact; a server that logs payloads and carries its
version's reference profile also judges its own traffic as it goes, so Prometheus (and the
alerting a team already has on it) sees drift within one window, with no job to schedule.  The
records are the ones the payload log writes (the same sample, the same columns, the same
statistics as ``conveyor monitor``), seen on the log's writer thread: off the request's path.

Gauges, per model and version: ``conveyor_drift_psi`` and ``conveyor_drift_pvalue`` per column of
the latest judged window, ``conveyor_drift_detected`` (1 for a drifted column), the windows judged
(``conveyor_drift_windows_total{outcome}``), and, as ``POST /feedback`` labels logged requests,
``conveyor_live_accuracy`` or ``conveyor_live_mean_absolute_error`` over the latest ``window``
labelled items, once at least ``min_labels`` (30) have come (``conveyor_live_labelled_total``
counts them).  With several workers each gauge
shows the most recent worker's window (prometheus-client's ``mostrecent`` mode).
"""

from __future__ import annotations

import logging
from collections import OrderedDict, deque
from collections.abc import Iterable
from typing import Any

from prometheus_client import Counter, Gauge

from conveyor.monitoring.drift import compare
from conveyor.monitoring.features import Columns
from conveyor.monitoring.hashed import as_logged
from conveyor.monitoring.observe import Observer
from conveyor.monitoring.profile import PROFILE_FILE, Profile
from conveyor.monitoring.quality import served_answers
from conveyor.monitoring.thresholds import Thresholds
from conveyor.serving.payload_hash import hash_key
from conveyor.serving.payload_record import AnswerRecord, FeedbackRecord, PayloadRecord, RequestRecord
from conveyor.serving.spec import ResolvedModel

log = logging.getLogger(__name__)

REMEMBERED_REQUESTS = 50_000  # answered requests kept to join late feedback with (their answers only)
LABELS = ["model", "version", "column"]
PSI = Gauge(
    "conveyor_drift_psi",
    "Population stability index of each column in the latest judged window.",
    LABELS,
    multiprocess_mode="mostrecent",
)
PVALUE = Gauge(
    "conveyor_drift_pvalue",
    "The drift test's p-value (KS or chi-square) per column, latest window.",
    LABELS,
    multiprocess_mode="mostrecent",
)
DETECTED = Gauge(
    "conveyor_drift_detected",
    "1 when the column drifted in the latest judged window, else 0.",
    LABELS,
    multiprocess_mode="mostrecent",
)
WINDOWS = Counter(
    "conveyor_drift_windows_total",
    "Windows of logged traffic judged, by outcome (drifted, stable).",
    ["model", "version", "outcome"],
)
ACCURACY = Gauge(
    "conveyor_live_accuracy",
    "Accuracy over the latest labelled logged items (POST /feedback).",
    ["model", "version"],
    multiprocess_mode="mostrecent",
)
MAE = Gauge(
    "conveyor_live_mean_absolute_error",
    "A regressor's mean absolute error over the latest labelled items.",
    ["model", "version"],
    multiprocess_mode="mostrecent",
)
LABELLED = Counter("conveyor_live_labelled_total", "Logged items that feedback labelled.", ["model", "version"])


class LiveDrift:
    """One server's running judgement: feed it payload log records (``observe``), read the gauges."""

    def __init__(self, resolved: ResolvedModel, profile: Profile, window: int, thresholds: Thresholds) -> None:
        self.observer = Observer(resolved)
        self.profile = profile
        self.window = window
        self.thresholds = thresholds
        self.labels = resolved.spec.labels
        self.regression = resolved.spec.task.regression
        self.boolean = resolved.spec.boolean_label  # how an answer without probabilities names its label
        self.names = {"model": resolved.spec.name, "version": resolved.spec.version}
        self.columns = Columns()
        self.judged = 0
        self.recent: OrderedDict[str, tuple[Any, ...]] = OrderedDict()
        self.outcomes: deque[float] = deque(maxlen=window)  # 1/0 per labelled item, or its absolute error

    def observe(self, record: PayloadRecord) -> None:
        """One record the payload log wrote (a request or a feedback line); never raises."""
        try:
            if isinstance(record, FeedbackRecord):
                self._feedback(record)
            elif isinstance(record, AnswerRecord):  # a request the sample left out: its answers only
                self._remember(record)
            else:
                self._request(record)
        except Exception:  # a record the watcher cannot read must not stop the log's writer
            log.exception("live drift: cannot read a payload record")

    def _request(self, record: RequestRecord) -> None:
        self.observer.add_record(self.columns, record)
        self._remember(record)
        if self.columns.items >= self.window:
            self._judge(self.columns)
            self.columns = Columns()

    def _remember(self, record: RequestRecord | AnswerRecord) -> None:
        request_id = record.request_id
        # a tuple of strings or floats: nothing the garbage collector must walk, however many are kept
        self.recent[request_id] = tuple(served_answers(record, self.labels, self.regression, self.boolean))
        self.recent.move_to_end(request_id)
        while len(self.recent) > REMEMBERED_REQUESTS:
            self.recent.popitem(last=False)

    def _judge(self, columns: Columns) -> None:
        results = compare(self.profile, columns, self.thresholds)
        for column in results:
            names = {**self.names, "column": column.name}
            if column.psi is not None:  # (the server keeps no embeddings: Observer's default)
                PSI.labels(**names).set(column.psi)
            PVALUE.labels(**names).set(column.pvalue)
            DETECTED.labels(**names).set(1 if column.drifted else 0)
        drifted = [c.name for c in results if c.drifted]
        WINDOWS.labels(outcome="drifted" if drifted else "stable", **self.names).inc()
        self.judged += 1
        if drifted:
            log.warning("drift in window %d of %s:%s: %s", self.judged, *self.names.values(), ", ".join(drifted))

    def _feedback(self, record: FeedbackRecord) -> None:
        served = self.recent.get(record.request_id)
        truth = record.truth
        if served is None or truth is None:
            return  # its request was not logged (the sample), or is too old to remember
        pairs = [(answer, true) for answer, true in zip(served, truth, strict=False) if answer is not None]
        if not pairs:
            return
        if self.regression:
            self.outcomes.extend(abs(float(answer) - float(true)) for answer, true in pairs)
        else:
            self.outcomes.extend(1.0 if answer == true else 0.0 for answer, true in pairs)
        LABELLED.labels(**self.names).inc(len(pairs))
        if len(self.outcomes) < self.thresholds.min_labels:
            return  # not enough labels: no gauge rather than "accuracy 100%" on two items
        mean = sum(self.outcomes) / len(self.outcomes)
        (MAE if self.regression else ACCURACY).labels(**self.names).set(round(mean, 6))


def live_drift_for(resolved: ResolvedModel, window: int, hashed: Iterable[str] = ()) -> LiveDrift | None:
    """The watcher for a served version that carries a reference profile; None for one without.

    ``hashed``: the input fields the log writes as hashes (``--log-hash``), judged as hashes."""
    stored = resolved.model_path.parent / PROFILE_FILE
    if window <= 0 or not stored.is_file() or not resolved.spec.task.named_inputs:
        return None
    profile = Profile.load(stored)
    if hashed:
        profile, notes = as_logged(profile, dict.fromkeys(hashed), hash_key())
        for note in notes:
            log.info("live drift: %s", note)
    limits = Thresholds(min_items=min(window, 100), min_labels=min(window, Thresholds().min_labels))
    return LiveDrift(resolved, profile, window, limits)
