"""The router's hop, traced: a SERVER span per proxied request and a CLIENT span per backend it tries.

Wrapped around ``Router._proxy`` and ``Router._forward`` only when tracing is on
(``conveyor.tracing``): an untraced router passes the client's ``traceparent`` on unchanged, a traced
one sends its own CLIENT span's instead, so the server's spans hang under the router's hop.  Names
and attributes follow OpenTelemetry's stable HTTP semantic conventions: the hop is ``METHOD route``
(the model server's route template, which the router knows: it is that API's proxy), a try is
``METHOD`` with ``server.address`` (the host), ``server.port``, ``url.full``, and
``http.response.status_code`` when the backend answered, ``error.type`` when it did not.

The sampler decides before anything of a span is made.  A request it does not sample costs a
header scan and the decision: without a ``traceparent`` of its own it is sent on with one that
names its new trace and says "not sampled", so the server behind decides the same.
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import urlsplit

from conveyor import tracing
from conveyor.router.answer import Answer, Unanswered
from conveyor.router.asgi import Receive, Send
from conveyor.router.routes import route_of

if TYPE_CHECKING:
    from conveyor.router.routing import BackendSpec

Proxy = Callable[[dict[str, Any], Receive, Send], Awaitable[None]]


class Forward(Protocol):
    """One try of one backend: its answer, or ``Unanswered`` when the next may be tried."""

    def __call__(
        self,
        backend: BackendSpec,
        method: str,
        target: str,
        body: bytes,
        headers: list[tuple[str, str]],
        retryable: bool,
    ) -> Awaitable[Answer | Unanswered]: ...


TRACE_HEADERS = ("traceparent", "tracestate")
DEFAULT_PORTS = {"http": 80, "https": 443}


def client_attributes(backend: BackendSpec, method: str, target: str) -> dict[str, Any]:
    """The stable HTTP client span attributes of one try, before it is sent."""
    attributes: dict[str, Any] = {}
    tracing.known_method(method, attributes)
    url = urlsplit(backend.url)
    attributes["server.address"] = url.hostname or ""
    attributes["server.port"] = url.port or DEFAULT_PORTS.get(url.scheme, 80)
    attributes["url.full"] = backend.url.rstrip("/") + target
    attributes["conveyor.backend"] = backend.name
    if backend.version:
        attributes["conveyor.version"] = backend.version
    return attributes


def traced(proxy: Proxy, forward: Forward, service: str) -> tuple[Proxy, Forward]:
    from opentelemetry.trace import SpanKind, Status, StatusCode

    async def proxy_traced(scope: dict[str, Any], receive: Receive, send: Send) -> None:
        method, route = scope["method"], route_of(scope["path"])
        name = tracing.span_name(method, route)
        decision = tracing.sampled(scope["headers"], name, SpanKind.SERVER)
        if not decision.sampled:
            if decision.trace_id and decision.parent is None:  # a new trace, not sampled: say so onward
                flags = f"00-{decision.trace_id:032x}-{random.getrandbits(64) or 1:016x}-00"
                scope = {**scope, "headers": [*scope["headers"], (b"traceparent", flags.encode())]}
            await proxy(scope, receive, send)
            return
        attributes = tracing.server_attributes(scope)
        if route:
            attributes["http.route"] = route
        attributes["conveyor.service"] = service
        span = tracing.start_server_span(decision, name, attributes)
        await tracing.serve_in_span(span, proxy, scope, receive, send)

    async def forward_traced(
        backend: BackendSpec, method: str, target: str, body: bytes, headers: list[tuple[str, str]], retryable: bool
    ) -> Answer | Unanswered:
        hop = tracing.current_span()
        if hop is None:  # the request is not sampled
            return await forward(backend, method, target, body, headers, retryable)
        attributes = client_attributes(backend, method, target)
        span = tracing.tracer().start_span(tracing.span_name(method, None), kind=SpanKind.CLIENT, attributes=attributes)
        try:
            onward = [(k, v) for k, v in headers if k.lower() not in TRACE_HEADERS]
            onward += list(tracing.headers_for(span).items())
            answer = await forward(backend, method, target, body, onward, retryable)
            error = answer.error
            if isinstance(answer, Answer) and error is None:  # the backend's own answer
                span.set_attribute("http.response.status_code", answer.status)
                if answer.status >= 400:
                    error = str(answer.status)
            if error is not None:
                span.set_attribute("error.type", error)
                span.set_status(Status(StatusCode.ERROR))
            return answer
        except BaseException as exc:
            span.set_attribute("error.type", f"{type(exc).__module__}.{type(exc).__qualname__}")
            span.set_status(Status(StatusCode.ERROR))
            raise
        finally:
            span.end()

    return proxy_traced, forward_traced
