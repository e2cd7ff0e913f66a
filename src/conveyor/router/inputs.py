"""What the router notes of a request's inputs while a canary splits live traffic.

Both versions of a canary should be asked the same kind of questions: a weighted random split
sends them one population.  Sticky routing (a header that keeps a user on one backend), a client
that pins a version, or a retry policy can break that, and then every comparison of their
answers (error rates, label shares, value distributions) is confounded.  While more than one
backend takes live traffic the router reads each ``/predict`` body's numbers: a text's length in
characters and words, a record's numeric fields; the ``input_shift`` analysis metric compares
canary with stable.  Bodies that are not JSON, or are large, are skipped: this is a sample,
never a cost a request waits on beyond one parse.
"""

from __future__ import annotations

from typing import Any

import orjson

MAX_PARSED_BYTES = 64 * 1024
MAX_FEATURES = 32  # names per body: a record with hundreds of columns is watched on its first ones


def input_features(body: bytes) -> dict[str, list[float]]:
    """Numbers per input feature of a classic ``/predict`` body (texts or records); {} for anything else."""
    if not body or len(body) > MAX_PARSED_BYTES or body[:1] not in (b"[", b"{", b'"'):
        return {}
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError:
        return {}
    found: dict[str, list[float]] = {}
    for item in classic_items(document):
        if isinstance(item, str):
            found.setdefault("text.characters", []).append(float(len(item)))
            found.setdefault("text.words", []).append(float(len(item.split())))
        elif isinstance(item, dict):
            for name, value in item.items():
                if isinstance(value, int | float) and not isinstance(value, bool):
                    key = f"feature.{name}"
                    if key in found or len(found) < MAX_FEATURES:
                        found.setdefault(key, []).append(float(value))
    return found


def classic_items(document: Any) -> list[Any]:
    """A classic ``/predict`` body's items: a JSON array, ``{"instances": [...]}``, or one item."""
    if isinstance(document, dict) and isinstance(document.get("instances"), list):
        return document["instances"]
    return document if isinstance(document, list) else [document]
