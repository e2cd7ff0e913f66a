"""``POST /feedback``: the true answers of served requests, as they become known.

A team learns the truth later: a customer churned, a reviewer labelled a ticket.  The caller
sends what it knows by the request id it got back in ``X-Request-Id``::

    [{"request_id": "order-17", "label": "high"}]              # a one-item request
    [{"request_id": "batch-3", "labels": ["high", "low"]}]     # one per item, in order
    [{"request_id": "area-9", "value": 812.5}]                 # a regressor (or "values")

Each entry is checked against the model (a label it knows, a number for a regressor) and goes
into the payload log beside the requests, where ``conveyor monitor`` joins them into live
accuracy (or error) per window.  A body with any bad entry is refused whole (422, naming it).
"""

from __future__ import annotations

import math
from typing import Any

from conveyor.errors import InvalidInput
from conveyor.serving.body import json_body

MAX_ENTRIES = 1000
EXAMPLE = '[{"request_id": "...", "label": "..."}]'


def parse_feedback(body: bytes, labels: list[str], regression: bool) -> list[dict[str, Any]]:
    """The checked entries (a model's ``labels``, or numbers for a regressor); any bad one refuses all."""
    return [check_entry(index, item, labels, regression) for index, item in enumerate(feedback_items(body))]


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
