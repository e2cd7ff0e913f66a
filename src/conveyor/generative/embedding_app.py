"""The OpenAI-compatible routes of a served embedding version (task ``text-embedding``).

``POST /v1/embeddings`` takes ``input`` (a text or a list of texts), ``encoding_format`` (``float``, or
``base64``: the little-endian float32 bytes, what the official clients ask for by default) and answers
one embedding per text with ``usage`` (the tokens read, after the encoder's truncation); ``GET
/v1/models``; ``/v2/health/live`` and ``/v2/health/ready`` as every Conveyor server answers them;
``/metrics``.  The encoder is the version's ONNX graph and ``tokenizer.json``
(``minilm.SentenceEncoder.from_files``), run off the event loop.  A refused request is OpenAI's error shape.
"""

from __future__ import annotations

import base64
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import anyio
import numpy as np
from prometheus_client import Counter
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from conveyor.errors import ClientError, InvalidParameter
from conveyor.generative import protocol
from conveyor.generative.model_routes import ModelRoutes, json_response, openai_app
from conveyor.generative.protocol import EmbeddingRequest
from conveyor.serving.body import JSON
from conveyor.serving.spec import ResolvedModel

log = logging.getLogger(__name__)

EMBEDDED_TOKENS = Counter(
    "conveyor_embedding_tokens_total", "Tokens of the texts embedded (after truncation).", ["model", "version"]
)
EMBEDDED_TEXTS = Counter("conveyor_embedded_texts_total", "Texts embedded.", ["model", "version"])


_json = json_response


def encoded(vectors: np.ndarray, encoding_format: str) -> list[list[float]] | list[str]:
    """Each row as OpenAI sends it: a list of floats, or base64 of its float32 little-endian bytes."""
    if encoding_format == "base64":
        return [base64.b64encode(row.astype("<f4").tobytes()).decode() for row in vectors]
    return [row.tolist() for row in vectors.astype(np.float32)]


class EmbeddingEndpoints(ModelRoutes):
    """The routes of one served embedding version over its encoder (loaded as the app starts)."""

    def __init__(self, load: Callable[[], Any], name: str, version: str) -> None:
        self.load = load
        self.encoder: Any = None
        super().__init__(name, version)  # health, /metrics and /v1/models: generative/model_routes.py
        self.tokens = EMBEDDED_TOKENS.labels(model=name, version=version)
        self.texts = EMBEDDED_TEXTS.labels(model=name, version=version)

    async def embeddings(self, request: Request) -> Response:
        started = time.perf_counter()
        try:
            parsed, _ = await self._read(request, EmbeddingRequest)
            width = self.encoder.hidden_size
            if parsed.dimensions is not None and parsed.dimensions != width:
                raise InvalidParameter(
                    f"this model's embeddings have {width} dimensions; it cannot answer {parsed.dimensions}",
                    "dimensions",
                    "invalid_value",
                )
            if any(not text for text in parsed.texts):
                raise InvalidParameter("Invalid value for 'input': an empty text has no embedding", "input")
            vectors, tokens = await anyio.to_thread.run_sync(self._embed, parsed.texts)
        except ClientError as exc:
            self.requests.record("/v1/embeddings", "POST", exc.status, time.perf_counter() - started)
            return Response(protocol.error_body(exc), status_code=exc.status, media_type=JSON)
        self.tokens.inc(tokens)
        self.texts.inc(len(parsed.texts))
        answer = protocol.embedding_answer(self.name, encoded(vectors, parsed.encoding_format), tokens)
        self.requests.record("/v1/embeddings", "POST", 200, time.perf_counter() - started)
        return _json(answer)

    def _embed(self, texts: list[str]) -> tuple[np.ndarray, int]:
        encodings = self.encoder.encode(texts)
        return self.encoder.embed_encoded(encodings), sum(len(e.ids) for e in encodings)


def create_app(
    load: Callable[[], Any], name: str, version: str, on_load_failure: Callable[[], None] | None = None
) -> Starlette:
    """The ASGI app of one served embedding version; ``load()`` makes its encoder (off the event loop)."""
    endpoints = EmbeddingEndpoints(load, name, version)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        try:
            endpoints.encoder = await anyio.to_thread.run_sync(load)
        except Exception as exc:
            endpoints.load_failed(exc, on_load_failure)
        else:
            endpoints.state = "ready"
        yield

    routes = [
        Route("/v1/embeddings", endpoints.embeddings, methods=["POST"]),
    ]
    return openai_app(endpoints, routes, lifespan)


def app_for(
    resolved: ResolvedModel, threads: int | None, on_load_failure: Callable[[], None] | None = None
) -> Starlette:
    """The app serving a resolved ``text-embedding`` version: its ONNX graph and tokenizer, as registered."""
    from conveyor.minilm import SentenceEncoder

    spec, tokenizer = resolved.spec, resolved.tokenizer_path
    assert tokenizer is not None  # the spec requires it of an embedding model

    def load() -> Any:
        return SentenceEncoder.from_files(resolved.model_path, tokenizer, spec.max_length, threads)

    return create_app(load, spec.name, spec.version, on_load_failure)
