"""Reading request bodies the way every route must: size-limited, refused early, JSON checked.

Shared by the classic ``/predict`` route (``predict_route.py``, raw ASGI) and the v2 routes.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import orjson
from starlette.requests import Request

from conveyor.errors import BadRequest, PayloadTooLarge

JSON = "application/json"


def is_json(content_type: str) -> bool:
    media = content_type.split(";", 1)[0].strip().lower()
    return media == JSON or (media.startswith("application/") and media.endswith("+json"))


# A refused body is still read (and dropped) up to this size before the 413 goes out: a client
# that sends its whole body before reading (Python's urllib, many HTTP/1.1 clients) would
# otherwise see the connection reset instead of the answer.  Bigger bodies are cut off.
DRAIN_LIMIT = 64 * 1024 * 1024


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, refusing more than ``limit`` bytes before reading them all."""
    expects_continue = request.headers.get("expect", "").lower() == "100-continue"
    return await read_limited(request.headers.get("content-length"), request.stream(), limit, expects_continue)


async def read_limited(
    declared: str | None, chunks: AsyncIterator[bytes], limit: int, expects_continue: bool = False
) -> bytes:
    """Join ``chunks``, refusing a declared or actual size over ``limit`` bytes as early as possible.

    A client that asked ``Expect: 100-continue`` has sent nothing yet and gets the 413 at once;
    any other client's body is drained first (up to ``DRAIN_LIMIT``) so that it reads the 413.
    """
    if declared is not None and declared.isdigit() and int(declared) > limit:
        if not expects_continue and int(declared) <= DRAIN_LIMIT:
            await _drain(chunks, DRAIN_LIMIT)
        raise PayloadTooLarge(f"request body of {declared} bytes exceeds the limit of {limit} bytes")
    parts: list[bytes] = []
    size = 0
    async for chunk in chunks:
        size += len(chunk)
        if size > limit:
            await _drain(chunks, DRAIN_LIMIT - size)
            raise PayloadTooLarge(f"request body exceeds the limit of {limit} bytes")
        parts.append(chunk)
    return b"".join(parts)


async def _drain(chunks: AsyncIterator[bytes], budget: int) -> None:
    """Read and drop what is left of a body, at most ``budget`` bytes."""
    async for chunk in chunks:
        budget -= len(chunk)
        if budget <= 0:
            return


def json_body(body: bytes, expected: str) -> Any:
    """The classic route's body as JSON; an empty body or bad JSON is a 400 saying what to send."""
    if not body.strip():
        raise BadRequest(f"request body is empty: send {expected}")
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise not_json(exc) from None


def not_json(exc: orjson.JSONDecodeError) -> BadRequest:
    """The 400 for a body that is not JSON.  A NaN or Infinity is named with its fix: Python's
    ``json.dumps`` writes a missing float as ``NaN``, which JSON has no word for."""
    hint = ""
    if exc.doc[exc.pos : exc.pos + 8].startswith(("NaN", "Infinity")):
        hint = (
            "; NaN and Infinity are not JSON: send a missing value as null (as pandas' "
            'to_json(orient="records") writes it)'
        )
    return BadRequest(f"request body is not valid JSON: {exc}{hint}")
