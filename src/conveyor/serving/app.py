"""HTTP routes of the model server: parse, call the data plane, answer.

Every client mistake is answered with a 4xx and ``{"error": "..."}``; only our
own faults are 500s.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from conveyor.errors import BadRequest, InvalidInput, PayloadTooLarge, UnsupportedMediaType
from conveyor.httputil import EXCEPTION_HANDLERS, Handler, guard
from conveyor.serving import metrics
from conveyor.serving.dataplane import DataPlane
from conveyor.serving.openapi import openapi_document
from conveyor.serving.predict_route import PredictRoute
from conveyor.serving.v2 import HEADER_LENGTH, decode_request

log = logging.getLogger(__name__)

JSON = "application/json"


def json_response(content: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(content), status_code=status, media_type=JSON, headers=headers)


def _is_json(content_type: str) -> bool:
    media = content_type.split(";", 1)[0].strip().lower()
    return media == JSON or (media.startswith("application/") and media.endswith("+json"))


# A refused body is still read (and dropped) up to this size before the 413 goes out: a client
# that sends its whole body before reading (Python's urllib, many HTTP/1.1 clients) would
# otherwise see the connection reset instead of the answer.  Bigger bodies are cut off.
DRAIN_LIMIT = 64 * 1024 * 1024


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, refusing more than ``limit`` bytes before reading them all."""
    expects_continue = request.headers.get("expect", "").lower() == "100-continue"
    return await read_limited(request.headers.get("content-length"), request.stream(), limit, expects_continue)


async def read_limited(
    declared: str | None, chunks: AsyncIterator[bytes], limit: int, expects_continue: bool = False
) -> bytes:
    """Join ``chunks``, refusing a declared or actual size over ``limit`` bytes as early as possible.

    A client that asked ``Expect: 100-continue`` has sent nothing yet and gets the 413 at once;
    any other client's body is drained first (up to ``DRAIN_LIMIT``) so that it reads the 413.
    """
    if declared is not None and declared.isdigit() and int(declared) > limit:
        if not expects_continue and int(declared) <= DRAIN_LIMIT:
            await _drain(chunks, DRAIN_LIMIT)
        raise PayloadTooLarge(f"request body of {declared} bytes exceeds the limit of {limit} bytes")
    parts: list[bytes] = []
    size = 0
    async for chunk in chunks:
        size += len(chunk)
        if size > limit:
            await _drain(chunks, DRAIN_LIMIT - size)
            raise PayloadTooLarge(f"request body exceeds the limit of {limit} bytes")
        parts.append(chunk)
    return b"".join(parts)


async def _drain(chunks: AsyncIterator[bytes], budget: int) -> None:
    """Read and drop what is left of a body, at most ``budget`` bytes."""
    async for chunk in chunks:
        budget -= len(chunk)
        if budget <= 0:
            return


def parse_texts(body: bytes, max_items: int) -> list[str]:
    """The classic body: a JSON array of strings."""
    if not body.strip():
        raise BadRequest('request body is empty: send a JSON array of strings, e.g. ["some text"]')
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise BadRequest(f"request body is not valid JSON: {exc}") from None
    if not isinstance(payload, list):
        kind = "null" if payload is None else type(payload).__name__
        kind = {"dict": "object", "str": "string", "int": "number", "float": "number"}.get(kind, kind)
        raise InvalidInput(f"expected a JSON array of strings, got {kind}")
    if not payload:
        raise InvalidInput("expected a non-empty JSON array of strings, got []")
    if len(payload) > max_items:
        raise PayloadTooLarge(f"too many items: {len(payload)} > the limit of {max_items}")
    for index, item in enumerate(payload):
        if type(item) is not str:
            kind = (
                "null"
                if item is None
                else {"dict": "object", "list": "array"}.get(type(item).__name__, type(item).__name__)
            )
            raise InvalidInput(f"item {index} must be a string, got {kind}")
    return payload


class Endpoints:
    """Route handlers bound to one data plane."""

    def __init__(self, plane: DataPlane) -> None:
        self.plane = plane

    async def predict(
        self, content_type: str | None, body: AsyncIterator[bytes], declared: str | None, expects_continue: bool
    ) -> bytes:
        """The classic route's answer (served by ``PredictRoute``, straight on ASGI)."""
        if content_type is not None and not _is_json(content_type):
            raise UnsupportedMediaType(f"Content-Type must be application/json, got {content_type!r}")
        options = self.plane.options
        raw = await read_limited(declared, body, options.max_body_bytes, expects_continue)
        texts = parse_texts(raw, options.max_items)
        answers = await self.plane.predict(texts)
        return orjson.dumps(answers[0] if len(answers) == 1 else answers)

    async def server_metadata(self, request: Request) -> Response:
        return json_response(self.plane.server_metadata())

    async def live(self, request: Request) -> Response:
        return json_response({"live": True})

    async def ready(self, request: Request) -> Response:
        ready = self.plane.ready
        body: dict[str, Any] = {"ready": ready}
        if not ready:
            body["state"] = self.plane.state
        return json_response(body, 200 if ready else 503)

    async def model_metadata(self, request: Request) -> Response:
        name, version = _model_ref(request)
        self.plane.check_model(name, version)
        return json_response(self.plane.model_metadata())

    async def model_ready(self, request: Request) -> Response:
        name, version = _model_ref(request)
        self.plane.check_model(name, version)
        ready = self.plane.ready
        return json_response({"name": name, "ready": ready}, 200 if ready else 503)

    async def infer(self, request: Request) -> Response:
        name, version = _model_ref(request)
        self.plane.check_model(name, version)
        # Like Triton and MLServer, the v2 route reads the body as JSON whatever the
        # Content-Type says (tritonclient sends none for binary requests).
        header_length = request.headers.get(HEADER_LENGTH)
        body = await read_body(request, self.plane.options.max_body_bytes)
        decoded = decode_request(body, header_length)
        payload, headers = await self.plane.infer(decoded)
        media = "application/octet-stream" if headers else JSON
        return Response(payload, media_type=media, headers=headers)

    async def repository_index(self, request: Request) -> Response:
        """The model repository extension's index (Triton, MLServer): which models this server has."""
        return json_response(self.plane.repository_index())

    async def metrics(self, request: Request) -> Response:
        data, content_type = metrics.render()
        return Response(data, media_type=content_type)

    async def openapi(self, request: Request) -> Response:
        return json_response(openapi_document(self.plane.spec, self.plane.options.max_items))


def _model_ref(request: Request) -> tuple[str, str | None]:
    params = request.path_params
    return params["name"], params.get("version")


class MetricsMiddleware:
    """Counts and times every request by route template (pure ASGI: no per-request task)."""

    def __init__(self, app: ASGIApp, plane: DataPlane, templates: dict[Any, str]) -> None:
        self.app = app
        self.labels = {"model": plane.spec.name, "version": plane.spec.version}
        self.templates = templates

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            endpoint = scope.get("endpoint")
            versioned = "version" in scope.get("path_params", {})
            route = self.templates.get((endpoint, versioned), "unmatched")
            method = scope["method"]
            metrics.REQUESTS.labels(route=route, method=method, status=str(status), **self.labels).inc()
            metrics.REQUEST_LATENCY.labels(route=route, method=method, **self.labels).observe(
                time.perf_counter() - started
            )


def create_app(
    plane: DataPlane, on_load_failure: Callable[[], None] | None = None, load_before_serving: bool = False
) -> PredictRoute:
    """The ASGI app for one data plane: ``POST /predict`` on raw ASGI, the rest on Starlette.

    By default the model loads in the background after start-up, so probes see
    live=200 and ready=503 until it is warm.  With several workers sharing one
    port (``load_before_serving``), each worker loads before it accepts
    connections: otherwise a request could reach a worker that is still loading
    while another one already reports ready.
    """
    ep = Endpoints(plane)
    table: list[tuple[str, Handler, list[str]]] = [
        ("/v2", ep.server_metadata, ["GET"]),
        ("/v2/health/live", ep.live, ["GET"]),
        ("/v2/health/ready", ep.ready, ["GET"]),
        ("/v2/models/{name}", ep.model_metadata, ["GET"]),
        ("/v2/models/{name}/versions/{version}", ep.model_metadata, ["GET"]),
        ("/v2/models/{name}/ready", ep.model_ready, ["GET"]),
        ("/v2/models/{name}/versions/{version}/ready", ep.model_ready, ["GET"]),
        ("/v2/models/{name}/infer", ep.infer, ["POST"]),
        ("/v2/models/{name}/versions/{version}/infer", ep.infer, ["POST"]),
        ("/v2/repository/index", ep.repository_index, ["POST"]),
        ("/metrics", ep.metrics, ["GET"]),
        ("/openapi.json", ep.openapi, ["GET"]),
    ]
    guarded = {handler: guard(handler) for _, handler, _ in table}
    routes = [Route(path, guarded[handler], methods=methods) for path, handler, methods in table]
    templates = {(guarded[handler], "{version}" in path): path for path, handler, _ in table}

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async def load() -> None:
            try:
                await plane.load()
            except Exception:
                if on_load_failure is not None:
                    on_load_failure()

        if load_before_serving:
            await plane.load()
        task = asyncio.create_task(load(), name="model-load") if not load_before_serving else None
        try:
            yield
        finally:
            if task is not None:
                task.cancel()
            await plane.close()

    app = Starlette(
        routes=routes,
        lifespan=lifespan,
        exception_handlers=EXCEPTION_HANDLERS,
    )
    app.add_middleware(MetricsMiddleware, plane=plane, templates=templates)
    app.state.plane = plane
    return PredictRoute(app, ep.predict, plane)
