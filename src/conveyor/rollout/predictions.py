"""Read the predicted labels out of a model server's answer, for the label shares and mirrored comparisons."""

from __future__ import annotations

from typing import Any

import orjson

MAX_PARSED_BYTES = 1_000_000


def _label(value: Any) -> str:
    if isinstance(value, dict):
        return ",".join(f"{key}={orjson.dumps(value[key]).decode()}" for key in sorted(value))
    return f"value={orjson.dumps(value).decode()}"


def prediction_labels(path: str, body: bytes) -> list[str] | None:
    """``["positive=true"]`` for ``{"positive": true}``; one entry per item of a batch; None when unknown.

    The JSON value is kept exactly, so ``{"positive": "false"}`` reads ``positive="false"``,
    which never agrees with ``positive=false``.
    """
    if len(body) > MAX_PARSED_BYTES:
        return None
    try:
        if path.endswith("/infer"):
            document = orjson.loads(body)
            for output in document.get("outputs", []):
                if output.get("name") == "label":
                    return [f"label={orjson.dumps(v).decode()}" for v in output.get("data", [])]
            return None
        if path.endswith("/predict"):
            document = orjson.loads(body)
            if isinstance(document, list):
                return [_label(item) for item in document]
            return [_label(document)]
    except (orjson.JSONDecodeError, AttributeError, TypeError):
        return ["unparseable"]
    return None
