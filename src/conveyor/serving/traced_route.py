"""The server's routes, traced: ``PredictRoute``'s answers with OpenTelemetry spans around them.

Used instead of ``PredictRoute`` only when tracing is on (``conveyor.tracing``), so a server without
an OTLP endpoint runs the untraced code.  Every POST (``/predict``, v2 ``infer``, ``/feedback``) gets
a SERVER span whose parent is the client's ``traceparent``; ``/predict`` adds its reading and
parsing and its serialising, and the data plane draws the batch (its wait, tokenizing and inference)
under whichever request span is current.  Health probes and scrapes are not traced.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import orjson
from starlette.types import Message, Receive, Scope, Send

from conveyor import tracing
from conveyor.serving.body import read_limited
from conveyor.serving.predict_route import Answered, PredictRoute


class TracedPredictRoute(PredictRoute):
    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST":
            await super().__call__(scope, receive, send)
            return
        path = scope["path"]
        span = tracing.start_server_span(
            f"POST {path}",
            scope["headers"],
            {
                "http.request.method": "POST",
                "url.path": path,
                "conveyor.model": self.plane.spec.name,
                "conveyor.version": self.plane.spec.version,
            },
        )

        def started(message: Message) -> None:
            for name, value in message.get("headers", []):
                if name == b"x-request-id":
                    span.set_attribute("conveyor.request_id", value.decode("latin-1"))

        await tracing.serve_in_span(span, super().__call__, scope, receive, send, started)

    async def answer(
        self, content_type: str | None, body: AsyncIterator[bytes], declared: str | None, expects_continue: bool
    ) -> tuple[bytes, Answered]:
        span: Any = tracing.current_span()
        self.plane.task.check_content_type(content_type)
        started = time.time_ns()
        raw = await read_limited(declared, body, self.plane.options.max_body_bytes, expects_continue)
        items = self.plane.parse_predict(raw, content_type)
        tracing.child(span, "read and parse", started, time.time_ns(), {"conveyor.items": len(items)})
        scores = await self.plane.score(items)
        started = time.time_ns()
        answers = self.plane.task.answers(scores)
        encoded = orjson.dumps(answers[0] if len(answers) == 1 else answers)
        tracing.child(span, "serialise", started, time.time_ns())
        return encoded, (items, scores, answers)
