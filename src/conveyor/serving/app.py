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

from conveyor import tracing
from conveyor.httputil import EXCEPTION_HANDLERS, Handler, guard
from conveyor.request_ids import client_request_id, new_request_id
from conveyor.serving import metrics, mlflow_scoring
from conveyor.serving.body import JSON, read_body
from conveyor.serving.dataplane import DataPlane
from conveyor.serving.openapi import openapi_document
from conveyor.serving.predict_route import PredictRoute
from conveyor.serving.v2 import HEADER_LENGTH, decode_request

log = logging.getLogger(__name__)


def json_response(content: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(content), status_code=status, media_type=JSON, headers=headers)


class Endpoints:
    """Route handlers bound to one data plane."""

    def __init__(self, plane: DataPlane) -> None:
        self.plane = plane

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
        started = time.perf_counter()
        header_length = request.headers.get(HEADER_LENGTH)
        body = await read_body(request, self.plane.options.max_body_bytes)
        decoded = decode_request(body, header_length)
        # the key POST /feedback and the payload log share, as on /predict (else the request's own id)
        request_id = client_request_id(request.headers.get("x-request-id", "").encode("latin-1"))
        request_id = request_id or client_request_id(str(decoded.id or "").encode()) or new_request_id()
        payload, headers = await self.plane.infer(decoded, request_id, request.url.path, started)
        media = "application/octet-stream" if headers else JSON
        return Response(payload, media_type=media, headers={**headers, "x-request-id": request_id})

    async def invocations(self, request: Request) -> Response:
        """MLflow's scoring protocol (``mlflow_scoring.py``), scored as ``/predict`` is and logged alike."""
        started = time.perf_counter()
        self.plane.task.check_content_type(request.headers.get("content-type"))
        body = await read_body(request, self.plane.options.max_body_bytes)
        items = self.plane.parse_predict(mlflow_scoring.predict_body(body, self.plane.spec), "application/json")
        request_id = client_request_id(request.headers.get("x-request-id", "").encode("latin-1")) or new_request_id()
        scores = await self.plane.score(items)
        answers = self.plane.task.answers(scores)
        self.plane.log_payload(request_id, mlflow_scoring.PATH, time.perf_counter() - started, items, scores, answers)
        payload = mlflow_scoring.predictions(answers, self.plane.spec)
        return Response(payload, media_type=JSON, headers={"x-request-id": request_id})

    async def feedback(self, request: Request) -> Response:
        body = await read_body(request, self.plane.options.max_body_bytes)
        return json_response(await self.plane.feedback(body), 202)

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
        self.recorder = metrics.RequestRecorder(plane.spec.name, plane.spec.version)
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
            self.recorder.record(route, scope["method"], status, time.perf_counter() - started)


def create_app(
    plane: DataPlane,
    on_load_failure: Callable[[], None] | None = None,
    load_before_serving: bool = False,
    on_ready: Callable[[], None] | None = None,
) -> PredictRoute:
    """The ASGI app for one data plane: ``POST /predict`` on raw ASGI, the rest on Starlette.

    By default the model loads in the background after start-up, so probes see
    live=200 and ready=503 until it is warm.  With several workers sharing one
    port (``load_before_serving``), each worker loads before it accepts
    connections: otherwise a request could reach a worker that is still loading
    while another one already reports ready.  ``on_ready`` runs once the model is loaded and warm
    (the server freezes its heap there: ``heap.py``).
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
        ("/feedback", ep.feedback, ["POST"]),
        (mlflow_scoring.PATH, ep.invocations, ["POST"]),
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
                return
            if on_ready is not None:
                on_ready()

        if load_before_serving:
            await plane.load()
            if on_ready is not None:
                on_ready()
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
    if tracing.configure("conveyor-serve"):  # OTEL_EXPORTER_OTLP_ENDPOINT is set
        from conveyor.serving.traced_route import TracedPredictRoute

        return TracedPredictRoute(app, plane, templates)
    return PredictRoute(app, plane)
