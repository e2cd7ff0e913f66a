"""The server's routes, traced: ``PredictRoute``'s answers with OpenTelemetry spans around them.

Used instead of ``PredictRoute`` only when tracing is on (``conveyor.tracing``), so a server without
an OTLP endpoint runs the untraced code.  Every sampled POST (``/predict``, v2 ``infer``,
``/feedback``) gets a SERVER span whose parent is the client's ``traceparent``, named and described
by OpenTelemetry's stable HTTP semantic conventions (``POST /v2/models/{name}/infer``: the route
template, known once routed); ``/predict`` adds its reading and parsing and its serialising, and
the data plane draws the batch (its wait, tokenizing and inference) under whichever request span is
current.  A request the sampler does not take runs the untraced route (``PredictRoute`` itself): no
span, no attribute, no context is made for it.  Health probes and scrapes are not traced.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import orjson
from opentelemetry.trace import SpanKind
from starlette.applications import Starlette
from starlette.types import Message, Receive, Scope, Send

from conveyor import tracing
from conveyor.serving.body import read_limited
from conveyor.serving.dataplane import DataPlane
from conveyor.serving.predict_route import PATH, Answered, PredictRoute

PREDICT_NAME = tracing.span_name("POST", PATH)


class TracedPredictRoute(PredictRoute):
    def __init__(self, app: Starlette, plane: DataPlane, templates: dict[Any, str]) -> None:
        super().__init__(app, plane)
        self.templates = templates  # (endpoint, versioned) -> route template, as the metrics label them
        # What a request the sampler does not take runs: the untraced route itself, not this class
        # with its span checks (its ``answer`` is PredictRoute's own).
        self.untraced = PredictRoute(app, plane)

    def route(self, scope: Scope) -> str | None:
        """The request's route template, once routed (``/predict`` is routed here, the rest by Starlette)."""
        if scope["path"] == PATH:
            return PATH
        versioned = "version" in scope.get("path_params", {})
        return self.templates.get((scope.get("endpoint"), versioned))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST":
            await self.untraced(scope, receive, send)
            return
        path = scope["path"]
        name = PREDICT_NAME if path == PATH else "POST"  # renamed once routed: ``POST`` and the route
        decision = tracing.sampled(scope["headers"], name, SpanKind.SERVER)
        if not decision.sampled:
            await self.untraced(scope, receive, send)
            return
        attributes = tracing.server_attributes(scope)
        if path == PATH:
            attributes["http.route"] = PATH
        attributes["conveyor.model"] = self.plane.spec.name
        attributes["conveyor.version"] = self.plane.spec.version
        span = tracing.start_server_span(decision, name, attributes)

        def started(message: Message) -> None:
            for key, value in message.get("headers", []):
                if key == b"x-request-id":
                    span.set_attribute("conveyor.request_id", value.decode("latin-1"))

        await tracing.serve_in_span(span, super().__call__, scope, receive, send, started, lambda: self.route(scope))

    async def answer(
        self, content_type: str | None, body: AsyncIterator[bytes], declared: str | None, expects_continue: bool
    ) -> tuple[bytes, Answered]:
        span: Any = tracing.current_span()
        if span is None:  # unreachable by a request (unsampled ones go to ``self.untraced``): untraced answer
            return await super().answer(content_type, body, declared, expects_continue)
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
