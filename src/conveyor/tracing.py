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
from typing import Any, TypeVar

ENABLED = False
_tracer: Any = None
_lock = threading.Lock()
_local = threading.local()  # .phases: the open batch's [(name, start_ns, end_ns)], on the inference thread


def wanted() -> bool:
    env = os.environ
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    return bool(env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or env.get("OTEL_EXPORTER_OTLP_ENDPOINT"))


def configure(service: str) -> bool:
    """Turn tracing on for this process when the environment asks for it; whether it is on."""
    global ENABLED, _tracer
    with _lock:
        if ENABLED or not wanted():
            return ENABLED
        from conveyor import __version__
        from conveyor.extras import needs

        with needs("tracing", "tracing (OTEL_EXPORTER_OTLP_ENDPOINT is set)"):
            from opentelemetry import trace
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
            from opentelemetry.sdk.resources import OTELResourceDetector, Resource
            from opentelemetry.sdk.trace import TracerProvider
            from opentelemetry.sdk.trace.export import BatchSpanProcessor

        base = Resource({"service.name": service, "service.version": __version__})
        resource = base.merge(OTELResourceDetector().detect())  # OTEL_SERVICE_NAME / _RESOURCE_ATTRIBUTES win
        protocol = os.environ.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL") or os.environ.get("OTEL_EXPORTER_OTLP_PROTOCOL")
        if protocol and protocol != "http/protobuf":
            logging.getLogger("conveyor.tracing").warning(
                "OTEL_EXPORTER_OTLP_PROTOCOL=%s: Conveyor sends OTLP over HTTP (http/protobuf); point "
                "OTEL_EXPORTER_OTLP_ENDPOINT at the collector's HTTP receiver (port 4318)",
                protocol,
            )
        provider = TracerProvider(resource=resource)  # flushed and shut down at exit
        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
        trace.set_tracer_provider(provider)
        _tracer = provider.get_tracer("conveyor", __version__)
        ENABLED = True
        return True


def tracer() -> Any:
    return _tracer


def _carrier(headers: Iterable[tuple[bytes, bytes]]) -> dict[str, str]:
    return {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in headers if k.lower().startswith(b"trace")}


def start_server_span(name: str, headers: Iterable[tuple[bytes, bytes]], attributes: dict[str, Any]) -> Any:
    """A SERVER span whose parent is the request's ``traceparent`` (a new trace without one)."""
    from opentelemetry import propagate
    from opentelemetry.trace import SpanKind

    parent = propagate.extract(_carrier(headers))
    return _tracer.start_span(name, context=parent, kind=SpanKind.SERVER, attributes=attributes)


async def serve_in_span(
    span: Any,
    app: Callable[[Any, Any, Any], Awaitable[None]],
    scope: Any,
    receive: Any,
    send: Any,
    on_start: Callable[[Any], None] | None = None,
) -> None:
    """Run the ASGI ``app`` with SPAN current; SPAN records the answer's status (an error at 5xx, 499
    when no answer started) and ends with the call.  ``on_start`` sees the ``http.response.start``."""
    from opentelemetry import context
    from opentelemetry.trace import Status, StatusCode, set_span_in_context

    status = 499  # nginx's "client closed request", until an answer starts

    async def sending(message: Any) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]
            if on_start is not None:
                on_start(message)
        await send(message)

    token = context.attach(set_span_in_context(span))
    try:
        await app(scope, receive, sending)
    finally:
        context.detach(token)
        span.set_attribute("http.response.status_code", status)
        if status >= 500:
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
