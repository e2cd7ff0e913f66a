"""``POST /predict``, the classic route, whole: served straight on ASGI.

The classic route carries nearly all of a model server's traffic, so it skips
Starlette's routing, ``Request`` objects and middleware chain.  Everything it does
is here, each once: the content type (the task's), the body size (``body.py``), the JSON array of
strings, the item count and the model's ability to take text (the data plane's checks,
shared with v2), the answer, its request metrics (``metrics.RequestRecorder``), its request id
(the client's ``X-Request-Id`` or a new one, sent back in the same header: the key that
``POST /feedback`` and the payload log share) and, after the answer is sent, the offer to the
payload log.
Every other path goes to the wrapped Starlette app unchanged.
Errors keep the server's contract: a client's mistake is a 4xx with
``{"error": ...}``, our own fault a logged 500.

A client that disconnects while its request waits (a load balancer's or a
user's timeout) should not cost inference: once the body is read, a watcher
waits for the connection to close and cancels the request, which takes its
texts out of the batch queue (or drops the answer if its batch is already
computing).  Such requests are counted with status 499, nginx's "client
closed request".
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.types import Receive, Scope, Send

from conveyor.errors import ClientError, MethodNotAllowed
from conveyor.request_ids import client_request_id, new_request_id
from conveyor.serving import metrics
from conveyor.serving.body import read_limited
from conveyor.serving.dataplane import DataPlane

log = logging.getLogger("conveyor.http")

PATH = "/predict"
JSON_HEADERS = [(b"content-type", b"application/json")]
CLIENT_CLOSED = 499


Answered = tuple[list[Any], Any, list[dict[str, Any]]]  # the items, their score rows, their answers


class ClientGone(Exception):
    """The client disconnected before its answer (while sending its body or waiting)."""


async def _body_chunks(receive: Receive, on_complete: Callable[[], None]) -> AsyncIterator[bytes]:
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientGone
        yield message.get("body", b"")
        if not message.get("more_body", False):
            on_complete()
            return


class DisconnectWatch:
    """After the body: cancels the request's task if the client closes the connection first."""

    def __init__(self, receive: Receive) -> None:
        self.receive = receive
        self.request = asyncio.current_task()
        self.watcher: asyncio.Task[Any] | None = None
        self.answering = False  # set once the answer is being sent: too late to cancel
        self.client_left = False

    def arm(self) -> None:
        self.watcher = asyncio.ensure_future(self.receive())
        self.watcher.add_done_callback(self._fired)

    def _fired(self, watcher: asyncio.Task[Any]) -> None:
        if watcher.cancelled() or self.answering or self.request is None:
            return
        if watcher.exception() is None and watcher.result().get("type") == "http.disconnect":
            self.client_left = True
            self.request.cancel()

    def disarm(self) -> None:
        self.answering = True
        if self.watcher is not None and not self.watcher.done():
            self.watcher.cancel()


class PredictRoute:
    """ASGI app: ``/predict`` answered here from the data plane, everything else by ``app``."""

    def __init__(self, app: Starlette, plane: DataPlane) -> None:
        self.app = app
        self.plane = plane
        self.recorder = metrics.RequestRecorder(plane.spec.name, plane.spec.version)

    async def answer(
        self, content_type: str | None, body: AsyncIterator[bytes], declared: str | None, expects_continue: bool
    ) -> tuple[bytes, Answered]:
        self.plane.task.check_content_type(content_type)  # before the body is read: a 415 comes early
        raw = await read_limited(declared, body, self.plane.options.max_body_bytes, expects_continue)
        items = self.plane.parse_predict(raw, content_type)
        scores = await self.plane.score(items)
        answers = self.plane.task.answers(scores)
        return orjson.dumps(answers[0] if len(answers) == 1 else answers), (items, scores, answers)

    @property
    def state(self) -> Any:
        return self.app.state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != PATH:
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        method: str = scope["method"]
        request_id = ""
        answered: Answered | None = None
        extra: list[tuple[bytes, bytes]] = []
        try:
            if method != "POST":
                extra.append((b"allow", b"POST"))
                raise MethodNotAllowed(f"method {method} not allowed on {PATH}")
            content_type = declared = None
            expects_continue = False
            for name, value in scope["headers"]:
                if name == b"content-type":
                    content_type = value.decode("latin-1")
                elif name == b"content-length":
                    declared = value.decode("latin-1")
                elif name == b"expect":
                    expects_continue = value.lower() == b"100-continue"
                elif name == b"x-request-id":
                    request_id = client_request_id(value)
            request_id = request_id or new_request_id()
            extra.append((b"x-request-id", request_id.encode()))
            watch = DisconnectWatch(receive)
            try:
                body, answered = await self.answer(
                    content_type, _body_chunks(receive, watch.arm), declared, expects_continue
                )
            except asyncio.CancelledError:
                if not watch.client_left:
                    raise  # the server is stopping, not the client
                task = asyncio.current_task()
                if task is not None:
                    task.uncancel()  # handled: the request ends here, normally
                raise ClientGone from None
            finally:
                watch.disarm()
            status = 200
        except ClientGone:
            self.recorder.record(PATH, method, CLIENT_CLOSED, time.perf_counter() - started)
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
            seconds = time.perf_counter() - started
            self.recorder.record(PATH, method, status, seconds)
        if answered is not None:
            self.plane.log_payload(request_id, PATH, seconds, *answered)
