"""``/predict`` served straight on ASGI.

The classic route carries nearly all of a model server's traffic, so it skips
Starlette's routing, ``Request`` objects and middleware chain and records its
own metrics.  Every other path goes to the wrapped Starlette app unchanged.
Errors keep the server's contract: a client's mistake is a 4xx with
``{"error": ...}``, our own fault a logged 500.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import orjson
from starlette.types import ASGIApp, Receive, Scope, Send

from conveyor.errors import ClientError
from conveyor.serving import metrics
from conveyor.serving.dataplane import DataPlane

log = logging.getLogger("conveyor.http")

PATH = "/predict"
# (content type, body chunks, declared content length) -> JSON answer
Answer = Callable[[str | None, AsyncIterator[bytes], str | None], Awaitable[bytes]]
JSON_HEADERS = [(b"content-type", b"application/json")]


class ClientGone(Exception):
    """The client disconnected before its request body arrived."""


async def _body_chunks(receive: Receive) -> AsyncIterator[bytes]:
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientGone
        yield message.get("body", b"")
        if not message.get("more_body", False):
            return


class PredictRoute:
    """ASGI app: ``/predict`` answered by ``answer``, everything else by ``app``."""

    def __init__(self, app: ASGIApp, answer: Answer, plane: DataPlane) -> None:
        self.app = app
        self.answer = answer
        self._labels = {"model": plane.spec.name, "version": plane.spec.version, "route": PATH}
        self._counters: dict[tuple[str, int], Any] = {}
        self._latency: dict[str, Any] = {}

    @property
    def state(self) -> Any:
        return self.app.state  # type: ignore[attr-defined]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != PATH:
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        method: str = scope["method"]
        extra: list[tuple[bytes, bytes]] = []
        try:
            if method != "POST":
                extra.append((b"allow", b"POST"))
                raise ClientError(405, f"method {method} not allowed on {PATH}")
            content_type = declared = None
            for name, value in scope["headers"]:
                if name == b"content-type":
                    content_type = value.decode("latin-1")
                elif name == b"content-length":
                    declared = value.decode("latin-1")
            body = await self.answer(content_type, _body_chunks(receive), declared)
            status = 200
        except ClientGone:
            return  # nobody to answer
        except ClientError as exc:
            status, body = exc.status, orjson.dumps({"error": exc.message})
        except Exception:
            log.exception("internal error on %s %s", method, PATH)
            status, body = 500, orjson.dumps({"error": "internal server error"})
        try:
            await send({"type": "http.response.start", "status": status, "headers": JSON_HEADERS + extra})
            await send({"type": "http.response.body", "body": body})
        finally:
            self._record(method, status, time.perf_counter() - started)

    def _record(self, method: str, status: int, seconds: float) -> None:
        counter = self._counters.get((method, status))
        if counter is None:
            counter = metrics.REQUESTS.labels(method=method, status=str(status), **self._labels)
            self._counters[(method, status)] = counter
        latency = self._latency.get(method)
        if latency is None:
            latency = self._latency[method] = metrics.REQUEST_LATENCY.labels(method=method, **self._labels)
        counter.inc()
        latency.observe(seconds)
