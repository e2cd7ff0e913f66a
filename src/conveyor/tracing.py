"""OpenTelemetry traces from ``conveyor serve`` and ``conveyor router``, on only when asked for.

Tracing is on when ``OTEL_EXPORTER_OTLP_ENDPOINT`` (or ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``) is
set and ``OTEL_SDK_DISABLED`` is not ``true``: the SDK is then imported and spans go out in batches
over OTLP/HTTP (protobuf), configured by the standard ``OTEL_*`` variables (service name, headers,
sampler, batch delay).  Otherwise nothing of OpenTelemetry is imported and the hot paths take the
untraced code: the only cost left is a few clock reads per batch (``phase``).

The W3C ``traceparent`` a client sends is the parent of the first span; the router sends its own
span's context on to the server, so one trace runs client → router → server → batch.  Work shared
by a batch (waiting, tokenizing, inference) is timed once per batch on the inference thread and
drawn as spans after the fact, with their real start and end, under each request of the batch.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, NamedTuple, TypeVar

ENABLED = False
_tracer: Any = None
_sampler: Any = None  # the sampler OTEL_TRACES_SAMPLER names, asked once per request before any span exists
_ids: Any = None
_provider: Any = None
_watch: Any = None  # conveyor.tracing_collector.CollectorWatch: whether the collector answers
_lock = threading.Lock()
_local = threading.local()  # .phases: the open batch's [(name, start_ns, end_ns)], on the inference thread

#: HTTP methods the semantic conventions name; any other is reported as ``_OTHER``
KNOWN_METHODS = frozenset({"CONNECT", "DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT", "TRACE"})
#: ``error.type`` of a request whose client left before any answer started
CLIENT_CLOSED = "client_closed"


def wanted() -> bool:
    env = os.environ
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    return bool(env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or env.get("OTEL_EXPORTER_OTLP_ENDPOINT"))


def configure(service: str, exporter: Any = None) -> bool:
    """Turn tracing on for this process when the environment asks for it; whether it is on.

    ``exporter`` (an OpenTelemetry ``SpanExporter``) turns it on whatever the environment says and
    receives each span as it ends: what an embedding program or a test uses instead of OTLP.
    """
    global ENABLED, _tracer, _sampler, _ids, _provider, _watch
    with _lock:
        if ENABLED or (exporter is None and not wanted()):
            return ENABLED
        from conveyor import __version__
        from conveyor.extras import needs

        with needs("tracing", "tracing (OTEL_EXPORTER_OTLP_ENDPOINT is set)"):
            from opentelemetry.sdk.resources import OTELResourceDetector, Resource
            from opentelemetry.sdk.trace import TracerProvider
            from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
            from opentelemetry.sdk.trace.id_generator import RandomIdGenerator

        class DrawnIds(RandomIdGenerator):
            """Trace ids as drawn by ``sampled``: the sampler decided on the id the new trace gets."""

            drawn = 0

            def generate_trace_id(self) -> int:
                drawn, self.drawn = self.drawn, 0
                return drawn or super().generate_trace_id()

        base = Resource({"service.name": service, "service.version": __version__})
        resource = base.merge(OTELResourceDetector().detect())  # OTEL_SERVICE_NAME / _RESOURCE_ATTRIBUTES win
        _ids = DrawnIds()
        provider = TracerProvider(resource=resource, id_generator=_ids)  # flushed and shut down at exit
        if exporter is not None:
            provider.add_span_processor(SimpleSpanProcessor(exporter))
        else:
            from conveyor.tracing_collector import watched_exporter

            protocol = os.environ.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL") or os.environ.get(
                "OTEL_EXPORTER_OTLP_PROTOCOL"
            )
            if protocol and protocol != "http/protobuf":
                logging.getLogger("conveyor.tracing").warning(
                    "OTEL_EXPORTER_OTLP_PROTOCOL=%s: Conveyor sends OTLP over HTTP (http/protobuf); point "
                    "OTEL_EXPORTER_OTLP_ENDPOINT at the collector's HTTP receiver (port 4318)",
                    protocol,
                )
            _watch, watched = watched_exporter()
            provider.add_span_processor(BatchSpanProcessor(watched))
        _provider, _sampler = provider, provider.sampler
        _tracer = provider.get_tracer("conveyor", __version__)
        ENABLED = True
        return True


def stop() -> None:
    """Flush and end this process's tracing (it may be configured again)."""
    global ENABLED, _tracer, _sampler, _ids, _provider, _watch
    with _lock:
        if _provider is not None:
            _provider.shutdown()
        ENABLED, _tracer, _sampler, _ids, _provider, _watch = False, None, None, None, None, None


def tracer() -> Any:
    return _tracer


class Sampled(NamedTuple):
    """The sampler's decision on one request, taken before anything of a span is made."""

    sampled: bool
    parent: Any  # the OpenTelemetry Context of the caller's ``traceparent`` (None: none was sent)
    trace_id: int  # the trace the request belongs to (0 when nothing was decided)


NOT_SAMPLED = Sampled(False, None, 0)


def sampled(headers: Iterable[tuple[bytes, bytes]], name: str, kind: Any) -> Sampled:
    """Whether this request is traced: its ``traceparent``, then the configured sampler, asked with no
    attributes (none are computed for a request that is not traced).  With the collector down,
    nothing is traced and the sampler is not even asked."""
    if _watch is not None and not _watch.up:
        return NOT_SAMPLED
    carrier = None
    parent: Any = None
    for key, value in headers:
        if key == b"traceparent" or key == b"tracestate":
            carrier = carrier or {}
            carrier[key.decode("latin-1")] = value.decode("latin-1")
    if carrier is None:
        trace_id = _ids.generate_trace_id()
    else:
        from opentelemetry import propagate
        from opentelemetry.trace import get_current_span

        parent = propagate.extract(carrier)
        context = get_current_span(parent).get_span_context()
        if context.is_valid:
            trace_id = context.trace_id
        else:
            parent, trace_id = None, _ids.generate_trace_id()
    decision = _sampler.should_sample(parent, trace_id, name, kind)
    return Sampled(decision.decision.is_sampled(), parent, trace_id)


def start_server_span(decision: Sampled, name: str, attributes: dict[str, Any]) -> Any:
    """A SERVER span for a sampled request: its parent the caller's ``traceparent``, or a new trace
    with the id the sampler decided on."""
    from opentelemetry.trace import SpanKind

    if decision.parent is None:
        _ids.drawn = decision.trace_id
    return _tracer.start_span(name, context=decision.parent, kind=SpanKind.SERVER, attributes=attributes)


def known_method(method: str, attributes: dict[str, Any]) -> None:
    """``http.request.method`` (and ``_original`` for a method the conventions do not name)."""
    if method in KNOWN_METHODS:
        attributes["http.request.method"] = method
    else:
        attributes["http.request.method"] = "_OTHER"
        attributes["http.request.method_original"] = method


def server_attributes(scope: Any) -> dict[str, Any]:
    """The stable HTTP server span attributes an ASGI request gives before it is answered."""
    attributes: dict[str, Any] = {}
    known_method(scope["method"], attributes)
    attributes["url.scheme"] = scope.get("scheme", "http")
    attributes["url.path"] = scope["path"]
    if scope.get("query_string"):
        attributes["url.query"] = scope["query_string"].decode("latin-1")
    client = scope.get("client")
    if client:
        attributes["client.address"] = client[0]
    if scope.get("http_version"):
        attributes["network.protocol.version"] = scope["http_version"]
    for key, value in scope["headers"]:
        if key == b"user-agent":
            attributes["user_agent.original"] = value.decode("latin-1")
            break
    return attributes


def span_name(method: str, route: str | None) -> str:
    """``METHOD route``, or the method alone where the route is not known (the conventions' names)."""
    method = method if method in KNOWN_METHODS else "HTTP"
    return f"{method} {route}" if route else method


async def serve_in_span(
    span: Any,
    app: Callable[[Any, Any, Any], Awaitable[None]],
    scope: Any,
    receive: Any,
    send: Any,
    on_start: Callable[[Any], None] | None = None,
    route: Callable[[], str | None] | None = None,
) -> None:
    """Run the ASGI ``app`` with SPAN current; SPAN records the answer's status (an error at 5xx),
    ``error.type`` when the request failed (the status code, the exception's type, or the client
    gone before any answer) and ends with the call.  ``on_start`` sees the ``http.response.start``;
    ``route`` gives the ``http.route`` once the app has routed the request (the span is renamed)."""
    from opentelemetry import context
    from opentelemetry.trace import Status, StatusCode, set_span_in_context

    status = 0  # no answer started yet

    async def sending(message: Any) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]
            if on_start is not None:
                on_start(message)
        await send(message)

    error: str | None = None
    token = context.attach(set_span_in_context(span))
    try:
        await app(scope, receive, sending)
    except BaseException as exc:
        error = f"{type(exc).__module__}.{type(exc).__qualname__}"
        raise
    finally:
        context.detach(token)
        if route is not None and (template := route()):
            span.set_attribute("http.route", template)
            span.update_name(span_name(scope["method"], template))
        if status:
            span.set_attribute("http.response.status_code", status)
            if status >= 500:
                error = error or str(status)
        elif error is None:
            error = CLIENT_CLOSED
        if error is not None:
            span.set_attribute("error.type", error)
            if status >= 500 or not status:
                span.set_status(Status(StatusCode.ERROR))
        span.end()


def _open(parent: Any, name: str, start_ns: int, attributes: dict[str, Any] | None = None) -> Any:
    from opentelemetry.trace import set_span_in_context

    return _tracer.start_span(name, context=set_span_in_context(parent), start_time=start_ns, attributes=attributes)


def child(parent: Any, name: str, start_ns: int, end_ns: int, attributes: dict[str, Any] | None = None) -> Any:
    """A finished span under PARENT with the times it really took (drawn after the fact; none without PARENT)."""
    if parent is None:
        return None
    span = _open(parent, name, start_ns, attributes)
    span.end(end_time=end_ns)
    return span


def headers_for(span: Any) -> dict[str, str]:
    """``traceparent`` (and ``tracestate``) naming SPAN, for the next hop."""
    from opentelemetry import propagate
    from opentelemetry.trace import set_span_in_context

    carrier: dict[str, str] = {}
    propagate.inject(carrier, context=set_span_in_context(span))
    return carrier


# ---- one batch's phases, timed on the inference thread ---------------------------------------------


class phase:
    """Time a part of a batch's work when the batch is traced; nothing else when it is not."""

    __slots__ = ("name", "start")

    def __init__(self, name: str) -> None:
        self.name = name
        self.start = 0

    def __enter__(self) -> None:
        if getattr(_local, "phases", None) is not None:
            self.start = time.time_ns()

    def __exit__(self, *exc: object) -> None:
        phases = getattr(_local, "phases", None)
        if phases is not None:
            phases.append((self.name, self.start, time.time_ns()))


@dataclass
class BatchTrace:
    """When one request's items waited, and what the batch they joined did (times in ns since the epoch)."""

    enqueued: int = field(default_factory=time.time_ns)
    started: int = 0
    finished: int = 0
    size: int = 0
    phases: list[tuple[str, int, int]] = field(default_factory=list)


Item = TypeVar("Item")
Result = TypeVar("Result")


def timed_phases(
    handler: Callable[[list[Item]], Result], items: list[Item]
) -> tuple[Result, list[tuple[str, int, int]]]:
    """Run ``handler(items)`` on this thread, collecting its ``phase`` timings."""
    phases: list[tuple[str, int, int]] = []
    _local.phases = phases
    try:
        return handler(items), phases
    finally:
        _local.phases = None


def current_span() -> Any | None:
    """The span of the request being answered, when it is recorded (None outside one, or not sampled)."""
    from opentelemetry import trace

    span = trace.get_current_span()
    return span if span.is_recording() else None


def draw_batch(trace: BatchTrace) -> None:
    """The batch's spans under the current request's span: the wait, the batch, and its phases within."""
    parent = current_span()
    if parent is None or not trace.started:
        return
    child(parent, "batch wait", trace.enqueued, max(trace.started, trace.enqueued))
    batch = _open(parent, "batch", trace.started, {"conveyor.batch.size": trace.size})
    for name, start, end in trace.phases:
        child(batch, name, start, end)
    batch.end(end_time=trace.finished)
