"""Traces by OpenTelemetry's stable HTTP semantic conventions, and tracing that costs nothing it cannot export.

The server and the router run in process (their real ASGI apps, the router forwarding over a real
socket to a backend on 127.0.0.1), with the SDK's in-memory exporter receiving each span as it ends.
Each span is checked attribute by attribute against the conventions' required set
(https://opentelemetry.io/docs/specs/semconv/http/http-spans/, stable since v1.23):

- HTTP server span: ``http.request.method``, ``url.path``, ``url.scheme`` (required),
  ``http.response.status_code`` and ``http.route`` (conditionally required: when there is one),
  ``error.type`` (when the request failed); recommended: ``client.address``, ``user_agent.original``;
  name ``{method} {http.route}``.
- HTTP client span: ``http.request.method``, ``server.address`` (a host, not a URL), ``server.port``,
  ``url.full`` (required), ``http.response.status_code`` (when an answer came), ``error.type`` (when
  it failed: a connection that never answered has no status code); name ``{method}``.

A request the sampler does not take must make no span object and compute no attribute; with the
collector down no span is made at all, one WARNING line says so, and one more when it is back.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import httpx
import pytest
from aiohttp import web
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from conveyor import tracing, tracing_collector
from conveyor.containers import free_port
from conveyor.router.app import Router, RouterOptions
from conveyor.router.routing import BackendSpec, RouteTable
from conveyor.serving.app import create_app
from conveyor.serving.dataplane import DataPlane, ServingOptions
from conveyor.serving.spec import resolve_model
from tests.otlp_receiver import OtlpReceiver
from tests.waiting import wait_for

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CALLER = "00f067aa0ba902b7"
AGENT = "checkout-service/2.1 python-httpx"
VOTE = {"inputs": [{"name": "text", "shape": [1], "datatype": "BYTES", "data": ["great"]}]}

SERVER_REQUIRED = {"http.request.method", "url.path", "url.scheme"}
SERVER_WHEN_ANSWERED = {"http.response.status_code", "http.route"}
CLIENT_REQUIRED = {"http.request.method", "server.address", "server.port", "url.full"}


@pytest.fixture
def spans(monkeypatch: pytest.MonkeyPatch) -> Iterator[InMemorySpanExporter]:
    """Tracing on for this process, every span to memory (the sampler from ``OTEL_TRACES_SAMPLER``)."""
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_ENDPOINT", raising=False)
    exporter = InMemorySpanExporter()
    tracing.stop()
    tracing.configure("conveyor-test", exporter=exporter)
    yield exporter
    tracing.stop()


def _by_name(exporter: InMemorySpanExporter) -> dict[str, ReadableSpan]:
    return {span.name: span for span in exporter.get_finished_spans()}


async def _serve(vote_model: Path) -> Any:
    """The model server in process (its data plane loaded), and an httpx client calling it."""
    plane = DataPlane(resolve_model(vote_model), ServingOptions())
    await plane.load()
    return plane, httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app(plane)), base_url="http://model")


def test_server_spans_carry_the_stable_http_server_attributes(spans: InMemorySpanExporter, vote_model: Path) -> None:
    async def main() -> list[httpx.Response]:
        plane, client = await _serve(vote_model)
        try:
            headers = {"traceparent": f"00-{TRACE}-{CALLER}-01", "user-agent": AGENT}
            return [
                await client.post("/predict", json=["good film"], headers=headers),
                await client.post("/v2/models/votes/infer", json=VOTE, headers=headers),
                await client.post("/predict?explain=no", content=b"not json", headers=headers),
            ]
        finally:
            await client.aclose()
            await plane.close()

    predict, infer, refused = asyncio.run(main())
    assert (predict.status_code, infer.status_code, refused.status_code) == (200, 200, 400)
    servers = [s for s in spans.get_finished_spans() if s.kind is SpanKind.SERVER]
    assert [s.name for s in servers] == ["POST /predict", "POST /v2/models/{name}/infer", "POST /predict"]
    for span, path, status in zip(
        servers, ["/predict", "/v2/models/votes/infer", "/predict"], [200, 200, 400], strict=True
    ):
        attributes = dict(span.attributes or {})
        assert set(attributes) >= SERVER_REQUIRED | SERVER_WHEN_ANSWERED, span.name
        assert attributes["http.request.method"] == "POST"
        assert (attributes["url.scheme"], attributes["url.path"]) == ("http", path)
        assert attributes["http.route"] == span.name.removeprefix("POST ")
        assert attributes["http.response.status_code"] == status
        assert attributes["client.address"] == "127.0.0.1"
        assert attributes["user_agent.original"] == AGENT
        assert "error.type" not in attributes  # a client's 400 is no server error
        assert span.status.status_code is StatusCode.UNSET
        assert span.parent is not None and f"{span.parent.span_id:016x}" == CALLER
        assert f"{span.context.trace_id:032x}" == TRACE
    assert dict(servers[2].attributes or {})["url.query"] == "explain=no"


def _backend(seen: list[dict[str, str]]) -> web.Application:
    async def predict(request: web.Request) -> web.Response:
        seen.append(dict(request.headers))
        return web.json_response({"positive": True})

    app = web.Application()
    app.router.add_post("/predict", predict)
    return app


async def _route(table: RouteTable, headers: dict[str, str]) -> httpx.Response:
    """One POST /predict through the router, in process, to the backends of TABLE."""
    router = Router(table, RouterOptions(retry=False))
    router.session = aiohttp.ClientSession()
    try:
        transport = httpx.ASGITransport(app=router)
        async with httpx.AsyncClient(transport=transport, base_url="http://router") as client:
            return await client.post("/predict", json=["good film"], headers=headers)
    finally:
        await router.session.close()


async def _with_backend(seen: list[dict[str, str]], headers: dict[str, str]) -> tuple[httpx.Response, int]:
    runner = web.AppRunner(_backend(seen))
    await runner.setup()
    port = free_port()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    try:
        table = RouteTable(
            backends=[BackendSpec(name="stable", url=f"http://127.0.0.1:{port}", version="1", weight=100)]
        )
        return await _route(table, headers), port
    finally:
        await runner.cleanup()


def test_router_spans_carry_the_stable_http_server_and_client_attributes(spans: InMemorySpanExporter) -> None:
    seen: list[dict[str, str]] = []
    headers = {"traceparent": f"00-{TRACE}-{CALLER}-01", "user-agent": AGENT}
    answer, port = asyncio.run(_with_backend(seen, headers))
    assert answer.status_code == 200, answer.text

    found = _by_name(spans)
    hop, call = found["POST /predict"], found["POST"]
    assert (hop.kind, call.kind) == (SpanKind.SERVER, SpanKind.CLIENT)
    hop_attributes, call_attributes = dict(hop.attributes or {}), dict(call.attributes or {})
    assert set(hop_attributes) >= SERVER_REQUIRED | SERVER_WHEN_ANSWERED
    assert hop_attributes["http.route"] == "/predict"
    assert hop_attributes["http.response.status_code"] == 200
    assert hop_attributes["user_agent.original"] == AGENT
    assert CLIENT_REQUIRED | {"http.response.status_code"} <= set(call_attributes)
    assert call_attributes["http.request.method"] == "POST"
    assert call_attributes["server.address"] == "127.0.0.1"  # the host alone, not a URL
    assert call_attributes["server.port"] == port
    assert call_attributes["url.full"] == f"http://127.0.0.1:{port}/predict"
    assert call_attributes["http.response.status_code"] == 200
    assert "error.type" not in call_attributes and "error.type" not in hop_attributes
    assert call.parent is not None and call.parent.span_id == hop.context.span_id
    # the backend is told the CLIENT span's context, so its spans hang under the try
    assert seen[0]["traceparent"] == f"00-{TRACE}-{call.context.span_id:016x}-01"


def test_a_backend_that_never_answered_has_an_error_type_and_no_status_code(spans: InMemorySpanExporter) -> None:
    closed = free_port()  # nothing listens there
    table = RouteTable(backends=[BackendSpec(name="stable", url=f"http://127.0.0.1:{closed}", version="1", weight=100)])
    answer = asyncio.run(_route(table, {}))
    assert answer.status_code == 502  # the router's own answer to its client

    found = _by_name(spans)
    call, hop = dict(found["POST"].attributes or {}), dict(found["POST /predict"].attributes or {})
    assert set(call) >= CLIENT_REQUIRED
    assert "http.response.status_code" not in call  # no backend answered: no status to report
    assert call["error.type"] == "connect_error"  # the router's code, as its request counter labels it
    assert found["POST"].status.status_code is StatusCode.ERROR
    assert (hop["http.response.status_code"], hop["error.type"]) == (502, "502")


def test_an_unsampled_request_makes_no_span_and_computes_no_attribute(
    spans: InMemorySpanExporter, vote_model: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tracing.stop()
    monkeypatch.setenv("OTEL_TRACES_SAMPLER", "parentbased_traceidratio")
    monkeypatch.setenv("OTEL_TRACES_SAMPLER_ARG", "0")
    tracing.configure("conveyor-test", exporter=spans)
    made: list[str] = []
    tracer = tracing.tracer()
    real_start = tracer.start_span
    monkeypatch.setattr(tracer, "start_span", lambda name, *a, **k: made.append(name) or real_start(name, *a, **k))
    for name in ("server_attributes", "known_method"):
        real = getattr(tracing, name)
        monkeypatch.setattr(tracing, name, lambda *a, _real=real, _name=name, **k: made.append(_name) or _real(*a, **k))

    async def main() -> list[int]:
        plane, client = await _serve(vote_model)
        try:
            answers = [await client.post("/predict", json=["good film"]) for _ in range(3)]
            answers.append(await client.post("/v2/models/votes/infer", json=VOTE))
        finally:
            await client.aclose()
            await plane.close()
        return [a.status_code for a in answers]

    assert asyncio.run(main()) == [200, 200, 200, 200]
    seen: list[dict[str, str]] = []
    answer, _ = asyncio.run(_with_backend(seen, {"user-agent": AGENT}))
    assert answer.status_code == 200
    assert made == [] and spans.get_finished_spans() == ()
    # a new trace the router did not sample is sent on as not sampled: the server decides the same
    version, trace_id, _, flags = seen[0]["traceparent"].split("-")
    assert (version, flags, len(trace_id)) == ("00", "00", 32)


@pytest.fixture
def quick_probes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tracing_collector, "FIRST_PROBE_DELAY_S", 0.05)
    monkeypatch.setattr(tracing_collector, "LONGEST_PROBE_DELAY_S", 0.2)


def test_with_the_collector_down_no_span_is_made_and_two_lines_say_so(
    vote_model: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, quick_probes: None
) -> None:
    port = free_port()  # the collector's, down until the receiver starts there
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", f"http://127.0.0.1:{port}")
    monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "50")
    caplog.set_level(logging.INFO)
    tracing.stop()
    receiver: OtlpReceiver | None = None
    try:
        assert tracing.configure("conveyor-serve")
        wait_for(lambda: "tracing is off" in caplog.text, timeout=10, what="the line saying tracing is off")
        made: list[str] = []
        tracer = tracing.tracer()
        real_start = tracer.start_span
        monkeypatch.setattr(tracer, "start_span", lambda name, *a, **k: made.append(name) or real_start(name, *a, **k))

        async def predict(times: int) -> list[int]:
            plane, client = await _serve(vote_model)
            try:
                return [(await client.post("/predict", json=["good film"])).status_code for _ in range(times)]
            finally:
                await client.aclose()
                await plane.close()

        assert asyncio.run(predict(5)) == [200] * 5
        assert made == []  # the collector is down: nothing was built for an export that cannot happen

        receiver = OtlpReceiver(port=port)
        wait_for(lambda: "answers again" in caplog.text, timeout=10, what="the line saying tracing is back")
        assert asyncio.run(predict(1)) == [200]
        wait_for(lambda: any(s["name"] == "POST /predict" for s in receiver.spans), timeout=10, what="the span")
    finally:
        tracing.stop()
        if receiver is not None:
            receiver.close()
    lines = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert [r.name for r in lines] == ["conveyor.tracing", "conveyor.tracing"], [r.getMessage() for r in lines]
    off, back = (r.getMessage() for r in lines)
    assert f"tracing is off until the OTLP collector at http://127.0.0.1:{port}/v1/traces answers" in off
    assert "tracing is back on" in back
