"""``POST /feedback``: the true answers of served requests, as they become known.

A team learns the truth later: a customer churned, a reviewer labelled a ticket.  The caller
sends what it knows by the request id it got back in ``X-Request-Id``::

    [{"request_id": "order-17", "label": "high"}]              # a one-item request
    [{"request_id": "batch-3", "labels": ["high", "low"]}]     # one per item, in order
    [{"request_id": "area-9", "value": 812.5}]                 # a regressor (or "values")

Each entry is checked against the model (a label it knows, a number for a regressor) and against
the request it names (``serving/answered.py``: as many answers as the request had items), and
goes into the payload log beside the requests, where ``conveyor monitor`` joins them into live
accuracy (or error) per window.  A body with any bad entry is refused whole (422, naming it).
Each good entry is then ``accepted`` (written), a ``duplicate`` (its request was labelled
already: the first label wins) or ``unknown`` (no request with that id was answered here); the
answer counts each and lists them per entry, the same at a server and at a router.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from conveyor.errors import InvalidInput
from conveyor.serving.body import json_body

if TYPE_CHECKING:
    from conveyor.serving.payloads import PayloadLog

MAX_ENTRIES = 1000
EXAMPLE = '[{"request_id": "...", "label": "..."}]'


def feedback_items(body: bytes) -> list[Any]:
    """The body's entries, unchecked: a JSON array (or one object) of 1 to ``MAX_ENTRIES``."""
    payload = json_body(body, f"a JSON array of feedback, e.g. {EXAMPLE}")
    if isinstance(payload, dict):
        payload = [payload]
    if not isinstance(payload, list) or not payload:
        raise InvalidInput(f"expected a non-empty JSON array of feedback, e.g. {EXAMPLE}")
    if len(payload) > MAX_ENTRIES:
        raise InvalidInput(f"at most {MAX_ENTRIES} feedback entries per request, got {len(payload)}")
    return payload


def entry_request_id(index: int, item: Any) -> str:
    """Entry ``index``'s request id, checked: what a router needs before it knows the model's labels."""
    where = f"feedback {index}"
    if not isinstance(item, dict):
        raise InvalidInput(f"{where} must be an object with request_id and label(s), got {type(item).__name__}")
    request_id = item.get("request_id")
    if not isinstance(request_id, str) or not 0 < len(request_id) <= 128:
        raise InvalidInput(f"{where}: request_id must be the X-Request-Id the answer carried (a string)")
    return request_id


def check_entry(index: int, item: Any, labels: list[str], regression: bool) -> dict[str, Any]:
    """Entry ``index`` checked against the model: ``{"request_id", "labels"|"values"}``."""
    where = f"feedback {index}"
    request_id = entry_request_id(index, item)
    one, many = ("value", "values") if regression else ("label", "labels")
    unknown = sorted(set(item) - {"request_id", one, many})
    if unknown:
        raise InvalidInput(f"{where}: unknown field(s) {unknown}; it takes request_id and {one} or {many}")
    if (one in item) == (many in item):
        raise InvalidInput(f"{where}: give {one} (a one-item request) or {many} (one per item)")
    answers = [item[one]] if one in item else item[many]
    if not isinstance(answers, list) or not answers:
        raise InvalidInput(f"{where}: {many} must be a non-empty array")
    for answer in answers:
        if regression:
            if not isinstance(answer, int | float) or isinstance(answer, bool) or not math.isfinite(answer):
                raise InvalidInput(f"{where}: {one} must be a finite number, got {answer!r}")
        elif answer not in labels:
            raise InvalidInput(f"{where}: unknown label {answer!r}; the model's labels are {labels}")
    return {"request_id": request_id, many: answers}


def check_length(index: int, entry: dict[str, Any], given: str, items: int) -> None:
    """Entry ``index`` holds one answer per item of its request, or a 422 naming the field and lengths."""
    many = "labels" if "labels" in entry else "values"
    answers = len(entry[many])
    if answers != items:
        field = given if given in ("label", "value") else many
        raise InvalidInput(
            f"feedback {index}: {field} gives {answers} answer(s) but request {entry['request_id']!r} "
            f"answered {items} item(s); give {many} with one per item, in order"
        )


def given_field(item: dict[str, Any]) -> str:
    return next((name for name in ("label", "labels", "value", "values") if name in item), "labels")


Checked = list[tuple[int, dict[str, Any], str]]  # (entry's index, checked entry, the field it used)
FindLog = Callable[[str], "PayloadLog | None"]  # the log that knows a request id (None: none does)


def checked_entries(items: list[Any], labels: list[str], regression: bool) -> Checked:
    """Every entry checked against the model; any bad one refuses all (before anything is written)."""
    return [(i, check_entry(i, item, labels, regression), given_field(item)) for i, item in enumerate(items)]


async def locate(request_ids: list[str], find: FindLog, refresh: Callable[[], None]) -> None:
    """Where some ids are known to no log yet, read the logs' files again (what another worker or a
    stopped server wrote; a worker's record reaches its file within about 0.1 s) before they are
    called unknown."""
    for pause in (0.0, 0.2):
        if all(find(request_id) is not None for request_id in request_ids):
            return
        await asyncio.sleep(pause)
        await asyncio.to_thread(refresh)


def judge(checked: Checked, find: FindLog) -> dict[str, Any]:
    """Write the accepted entries to the log that knows each request; the counts and per-entry results."""
    placed: list[tuple[dict[str, Any], PayloadLog | None]] = []
    for index, entry, given in checked:
        log = find(entry["request_id"])
        items = log.index.items(entry["request_id"]) if log is not None else None
        if items is not None:
            check_length(index, entry, given, items)  # every entry checked before any is written
        placed.append((entry, log if items is not None else None))
    results: list[dict[str, str]] = []
    counts = {"accepted": 0, "duplicate": 0, "unknown": 0, "dropped": 0}
    seen: set[str] = set()
    for entry, log in placed:
        request_id = entry["request_id"]
        if log is None:
            result = "unknown"
        elif request_id in seen or log.index.labelled(request_id):
            result = "duplicate"
        else:
            result = "accepted" if log.offer_feedback([entry]) else "dropped"  # dropped: the queue is full
        seen.add(request_id)
        counts[result] += 1
        results.append({"request_id": request_id, "result": result})
    return {**counts, "results": results}
