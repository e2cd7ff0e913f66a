"""The routes every OpenAI-compatible version answers besides its own work: health, /metrics, /v1/models.

The generation app (``generative/app.py``) and the embedding app (``generative/embedding_app.py``) serve
different endpoints over different engines, but a client, a probe and Prometheus see the same model listing,
the same ``name``/``name:version``/``name@alias`` answering and the same readiness: one class holds them.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import Any, TypeVar

import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from conveyor.errors import ClientError, NotFound, NotReady
from conveyor.generative import protocol
from conveyor.serving import metrics
from conveyor.serving.body import JSON

log = logging.getLogger(__name__)
MAX_BODY_BYTES = 4_000_000
Parsed = TypeVar("Parsed", bound=Any)


def json_response(content: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(content), status_code=status, media_type=JSON)


class ModelRoutes:
    """Health, metrics and the OpenAI model listing of one served version."""

    def __init__(self, name: str, version: str) -> None:
        self.name = name
        self.version = version
        self.state = "loading"
        self.created = int(time.time())
        self.requests = metrics.RequestRecorder(name, version)

    def load_failed(self, exc: Exception, on_load_failure: Callable[[], None] | None) -> None:
        """A model that cannot load: not ready, said once, and the server stopped (ON_LOAD_FAILURE)."""
        self.state = "failed"
        log.error("the model could not be loaded: %s", exc)
        if on_load_failure is not None:
            on_load_failure()

    async def live(self, request: Request) -> Response:
        return json_response({"live": True})

    async def ready(self, request: Request) -> Response:
        ready = self.state == "ready"
        body = {"ready": ready} if ready else {"ready": False, "state": self.state}
        return json_response(body, 200 if ready else 503)

    async def metrics(self, request: Request) -> Response:
        body, content_type = metrics.render()
        return Response(body, media_type=content_type)

    def _model(self) -> dict[str, Any]:
        return {"id": self.name, "object": "model", "created": self.created, "owned_by": "conveyor",
                "version": self.version}  # fmt: skip

    async def models(self, request: Request) -> Response:
        return json_response({"object": "list", "data": [self._model()]})

    async def model(self, request: Request) -> Response:
        self._check_model(request.path_params["model"])
        return json_response(self._model())

    async def _read(self, request: Request, kind: type[Parsed]) -> tuple[Parsed, bytes]:
        """The request's body parsed as KIND, for this model, while it is ready (else a ClientError)."""
        if self.state != "ready":
            raise NotReady(f"the model is {self.state}")
        body = await request.body()
        if len(body) > MAX_BODY_BYTES:
            raise ClientError(413, f"the request body is over {MAX_BODY_BYTES} bytes")
        parsed = protocol.parse(kind, body)
        self._check_model(parsed.model)
        return parsed, body

    def _check_model(self, model: str) -> None:
        """The served model answers to its name, ``name:version`` and ``name@alias``."""
        if model not in (self.name, f"{self.name}:{self.version}") and not model.startswith(f"{self.name}@"):
            raise protocol.UnknownModel(f"The model '{model}' does not exist: this server serves '{self.name}'")


def openai_app(
    endpoints: ModelRoutes, own: list[Route], lifespan: Callable[[Starlette], AbstractAsyncContextManager[None]]
) -> Starlette:
    """The app of one version: its OWN routes, then the model listing, health and metrics every version has;
    a refused request answers in OpenAI's error shape."""
    routes = [
        *own,
        Route("/v1/models", endpoints.models, methods=["GET"]),
        Route("/v1/models/{model:path}", endpoints.model, methods=["GET"]),
        Route("/v2/health/live", endpoints.live, methods=["GET"]),
        Route("/v2/health/ready", endpoints.ready, methods=["GET"]),
        Route("/metrics", endpoints.metrics, methods=["GET"]),
    ]
    app = Starlette(routes=routes, lifespan=lifespan, exception_handlers={NotFound: _refused, ClientError: _refused})
    app.state.endpoints = endpoints
    return app


async def _refused(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ClientError)
    return Response(protocol.error_body(exc), status_code=exc.status, media_type=JSON)
