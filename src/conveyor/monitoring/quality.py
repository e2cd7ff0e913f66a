"""Live quality: the served answers of a window against the true answers ``POST /feedback`` brought.

Feedback arrives after its request (minutes or weeks later), so all of it is gathered first and
each window's requests are joined by request id: accuracy for a classifier (the label with the
highest probability against the true label, or the label it answered), mean absolute error for a
regressor.  Every answered request can be joined: the sampled ones by their request line, the
others by the compact ``answer`` line the log writes for each (``serving/answered.py``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from conveyor.monitoring.evidence import classifier_quality, regressor_quality
from conveyor.monitoring.features import answered_labels
from conveyor.serving.payload_record import Answered, FeedbackRecord, PayloadRecord, RequestRecord


def feedback_of(records: Iterable[PayloadRecord]) -> dict[str, list[Any]]:
    """request id -> the true answers, per item (the first feedback for an id wins, as the server
    that took it answered: a later one is a duplicate)."""
    truth: dict[str, list[Any]] = {}
    for record in records:
        if isinstance(record, FeedbackRecord) and record.truth is not None:
            truth.setdefault(record.request_id, record.truth)
    return truth


def window_quality(
    requests: Sequence[Answered],
    truth: dict[str, list[Any]],
    labels: list[str],
    regression: bool,
    boolean: str | None = None,
) -> dict[str, Any] | None:
    """The window's items with feedback, judged (``monitoring.evidence``): ``labelled`` and
    ``accuracy`` with per class counts, precision, recall and F1, or ``mae`` and ``rmse``, each with
    its interval; None when no item has feedback."""
    pairs = ((r.request_id, served_answers(r, labels, regression, boolean)) for r in requests if r.request_id in truth)
    return served_quality(pairs, truth, labels, regression)


def served_quality(
    served: Iterable[tuple[str, list[Any]]], truth: dict[str, list[Any]], labels: list[str], regression: bool
) -> dict[str, Any] | None:
    """``window_quality`` of (request id, its served answers per item) pairs: what a stored summary keeps."""
    served_all: list[Any] = []
    truth_all: list[Any] = []
    for request_id, predicted in served:
        true = truth.get(request_id)
        if not true:
            continue
        for served_one, actual in zip(predicted, true, strict=False):
            if served_one is not None:
                served_all.append(served_one)
                truth_all.append(actual)
    if not served_all:
        return None
    if regression:
        return regressor_quality([float(v) for v in served_all], [float(v) for v in truth_all])
    return classifier_quality([str(v) for v in served_all], [str(v) for v in truth_all], labels)


def served_answers(record: Answered, labels: list[str], regression: bool, boolean: str | None) -> list[Any]:
    """What a logged request answered, per item: the winning label, or a regressor's value."""
    if regression:
        return [o.get("value") if isinstance(o, dict) else None for o in record.outputs]
    if record.probabilities is None:  # a router's record: the answer is all there is
        return answered_labels(record.outputs, labels, boolean)
    rows = record.probabilities
    return [labels[max(range(len(row)), key=row.__getitem__)] if row else None for row in rows]


def labelled_rows(
    requests: list[RequestRecord], truth: dict[str, list[Any]], text: bool, target: str
) -> list[dict[str, Any]]:
    """The logged inputs that feedback labelled, one row per item, with the true answer as ``target``:
    the served traffic a retraining adds to its data (``conveyor monitor --export-labelled``)."""
    rows = []
    for record in requests:
        true = truth.get(record.request_id)
        inputs = record.inputs
        if not true or not inputs:
            continue
        for item, answer in zip(inputs, true, strict=False):
            if item is None:
                continue  # dropped by --log-drop text
            row = {"text": item} if text else dict(item)
            rows.append({**row, target: answer, "request_id": record.request_id, "time": record.time})
    return rows
