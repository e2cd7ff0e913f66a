"""What one try of one backend gives the router: the backend's answer, one the router made for it, or none.

``Answer.error`` names why the router answered in a backend's place (its connection failed, it did
not answer in time): the same codes as the router's request counter, and the span's ``error.type``,
so a backend that never answered is never mistaken for one that answered 502.  ``Answer.stream`` is
an answer still arriving (server-sent events): its body is relayed as it comes (``router/stream.py``).
``Unanswered`` is a connection that failed before any answer, when another backend may still be tried.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:
    import aiohttp

    from conveyor.router.predictions import Predictions


class Answer(NamedTuple):
    status: int
    headers: list[tuple[bytes, bytes]]
    body: bytes
    predictions: Predictions | None
    error: str | None = None  # set when the router answered for a backend that did not
    stream: aiohttp.ClientResponse | None = None  # an event stream, open: ``body`` is empty, the events follow


class Unanswered(NamedTuple):
    """The connection failed before any answer: the next backend is tried."""

    error: str
