"""Streams through the router: a backend's server-sent events relayed to the client as they come.

A generative version answers ``"stream": true`` with ``text/event-stream``: a person reads the answer
while it is generated, so buffering it until the last event would make the router cost the whole
generation in time to first token.  Each chunk the backend sends is passed on at once
(``more_body``), while the router listens for the client going away: a client that closes its stream
closes the backend's connection, and the backend stops generating and frees its slot
(``generative/app.py``).  What was relayed is kept, up to ``KEPT_BYTES``, for the payload log and
the mirror's comparison, which run after the stream ends, as they do for a whole answer.
"""

from __future__ import annotations

import asyncio
import contextlib

import aiohttp

from conveyor.router.asgi import Receive, Send

EVENT_STREAM = "text/event-stream"
KEPT_BYTES = 1_000_000  # a longer stream is relayed whole; what is kept of it is cut (and not logged)


def is_event_stream(response: aiohttp.ClientResponse) -> bool:
    return response.status == 200 and response.content_type == EVENT_STREAM


async def _client_left(receive: Receive) -> None:
    """Returns when the client disconnects (its request body was read whole before)."""
    while (await receive())["type"] != "http.disconnect":
        pass


async def relay(response: aiohttp.ClientResponse, receive: Receive, send: Send) -> bytes | None:
    """Send ``response``'s body on chunk by chunk (its head was sent); the stream's bytes when it ended
    whole and within ``KEPT_BYTES``, None when the client left, the backend broke off, or it was longer."""
    kept = bytearray()
    cut = False

    async def pump() -> None:
        nonlocal cut
        async for chunk in response.content.iter_any():
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
            if not cut and len(kept) + len(chunk) <= KEPT_BYTES:
                kept.extend(chunk)
            else:
                cut = True
        await send({"type": "http.response.body", "body": b""})

    pumping = asyncio.ensure_future(pump())
    listening = asyncio.ensure_future(_client_left(receive))
    try:
        await asyncio.wait((pumping, listening), return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (pumping, listening):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
    whole = pumping.done() and not pumping.cancelled() and pumping.exception() is None
    if whole:
        response.release()  # the connection goes back to the pool
        return None if cut else bytes(kept)
    response.close()  # the client left or the stream broke: the backend sees its connection close
    return None
