"""The router's hop, traced: a SERVER span per proxied request and a CLIENT span per backend it tries.

Wrapped around ``Router._proxy`` and ``Router._forward`` only when tracing is on
(``conveyor.tracing``): an untraced router passes the client's ``traceparent`` on unchanged, a traced
one sends its own CLIENT span's instead, so the server's spans hang under the router's hop.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Protocol

from conveyor import tracing
from conveyor.router.asgi import Receive, Send

if TYPE_CHECKING:
    from conveyor.router.predictions import Predictions
    from conveyor.router.routing import BackendSpec

Proxy = Callable[[dict[str, Any], Receive, Send], Awaitable[None]]
#: a backend's answer: status, headers, body and the predictions read from it
Answer = tuple[int, list[tuple[bytes, bytes]], bytes, "Predictions | None"]


class Forward(Protocol):
    """One try of one backend: its answer, or None when the connection failed and the next may be tried."""

    def __call__(
        self,
        backend: BackendSpec,
        method: str,
        target: str,
        body: bytes,
        headers: list[tuple[str, str]],
        retryable: bool,
    ) -> Awaitable[Answer | None]: ...


TRACE_HEADERS = ("traceparent", "tracestate")


def traced(proxy: Proxy, forward: Forward, service: str) -> tuple[Proxy, Forward]:
    from opentelemetry.trace import SpanKind, Status, StatusCode

    async def proxy_traced(scope: dict[str, Any], receive: Receive, send: Send) -> None:
        method, path = scope["method"], scope["path"]
        attributes = {"http.request.method": method, "url.path": path, "conveyor.service": service}
        span = tracing.start_server_span(f"router {method} {path}", scope["headers"], attributes)
        await tracing.serve_in_span(span, proxy, scope, receive, send)

    async def forward_traced(
        backend: BackendSpec, method: str, target: str, body: bytes, headers: list[tuple[str, str]], retryable: bool
    ) -> Answer | None:
        attributes: dict[str, str] = {"server.address": backend.url, "conveyor.backend": backend.name}
        if backend.version:
            attributes["conveyor.version"] = backend.version
        span = tracing.tracer().start_span(f"{method} {backend.name}", kind=SpanKind.CLIENT, attributes=attributes)
        try:
            onward = [(k, v) for k, v in headers if k.lower() not in TRACE_HEADERS]
            onward += list(tracing.headers_for(span).items())
            answer = await forward(backend, method, target, body, onward, retryable)
            if answer is None:  # the connection failed: the next backend is tried
                span.set_status(Status(StatusCode.ERROR, "connection failed"))
            else:
                span.set_attribute("http.response.status_code", answer[0])
                if answer[0] >= 500:
                    span.set_status(Status(StatusCode.ERROR))
            return answer
        finally:
            span.end()

    return proxy_traced, forward_traced
