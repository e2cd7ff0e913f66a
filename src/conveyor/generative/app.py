"""The OpenAI-compatible routes of a served generative version, with the model server's health and metrics.

``POST /v1/chat/completions`` and ``/v1/completions`` (streamed as server-sent events with
``"stream": true``), ``GET /v1/models``; ``/v2/health/live`` and ``/v2/health/ready`` as every
Conveyor server answers them (ready: every slot loaded and warmed up), ``/metrics``.  A refused request
is OpenAI's error shape (``protocol.error_body``); each answer is counted and timed per version
(``generative/metrics.py``): time to first token, time between tokens, queue time, tokens in and out.
With a payload log, a sample of prompts and answers is logged (``generative/payloads.py``).
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from typing import TYPE_CHECKING

import anyio
import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from conveyor.errors import ClientError
from conveyor.generative import protocol
from conveyor.generative.engine import Engine, Generation, Piece, Slots
from conveyor.generative.metrics import GenerationRecorder
from conveyor.generative.model_routes import ModelRoutes, json_response, openai_app
from conveyor.generative.payloads import answer_item, prompt_item, prompt_of, unsampled
from conveyor.generative.protocol import ChatRequest, CompletionRequest, Sampling
from conveyor.request_ids import client_request_id, new_request_id
from conveyor.serving.body import JSON
from conveyor.serving.payload_record import RequestRecord, record_time
from conveyor.serving.spec import ResolvedModel

if TYPE_CHECKING:
    from conveyor.serving.payloads import PayloadLog, PayloadLogConfig

log = logging.getLogger(__name__)
# no-cache; x-accel-buffering: nginx in front (conveyor router --data-plane nginx, an ingress) passes each event on
STREAM_HEADERS = {"cache-control": "no-cache", "x-accel-buffering": "no"}
Asked = tuple[str, str, float, str | None, int]  # request id, route, when it came, its prompt, the prompt's tokens


_json = json_response


class GenerationEndpoints(ModelRoutes):
    """The routes of one served version over its engine."""

    def __init__(self, engine: Engine, name: str, version: str, payload_log: PayloadLogConfig | None = None) -> None:
        self.engine = engine
        self.payload_config = payload_log
        self.payloads: PayloadLog | None = None  # opened as the app starts (its writer is a thread)
        super().__init__(name, version)  # health, /metrics and /v1/models: generative/model_routes.py
        self.slots: Slots | None = None
        self.recorder = GenerationRecorder(name, version)

    # generation ---------------------------------------------------------------------------------

    async def chat(self, request: Request) -> Response:
        return await self._answer(request, ChatRequest, "chat.completion")

    async def completions(self, request: Request) -> Response:
        return await self._answer(request, CompletionRequest, "text_completion")

    async def _answer(self, request: Request, kind: type[Sampling], object_kind: str) -> Response:
        started = time.perf_counter()
        route = request.url.path
        try:
            parsed, body = await self._read(request, kind)
            generation = self._generation(parsed)
        except ClientError as exc:
            self.requests.record(route, "POST", exc.status, time.perf_counter() - started)
            return Response(protocol.error_body(exc), status_code=exc.status, media_type=JSON)
        answer_id = protocol.new_id("chatcmpl" if isinstance(parsed, ChatRequest) else "cmpl")
        request_id = client_request_id(request.headers.get("x-request-id", "").encode("latin-1")) or new_request_id()
        pieces = self._pieces(generation, started)
        prompt = prompt_of(orjson.loads(body)) if self.payloads else None
        asked = (request_id, route, started, prompt, len(generation.tokens))
        if parsed.stream:
            events = self._events(pieces, answer_id, object_kind, parsed.include_usage, asked)
            self.requests.record(route, "POST", 200, time.perf_counter() - started)
            return StreamingResponse(events, media_type="text/event-stream", headers=STREAM_HEADERS)
        text, finish = "", "stop"
        try:
            async with contextlib.aclosing(pieces) as stream:
                async for piece in stream:
                    text += piece.text
                    finish = piece.finish or finish
        except ClientError as exc:  # a schema the grammar converter refuses is found as generation starts
            self.requests.record(route, "POST", exc.status, time.perf_counter() - started)
            return Response(protocol.error_body(exc), status_code=exc.status, media_type=JSON)
        build = protocol.chat_answer if isinstance(parsed, ChatRequest) else protocol.completion_answer
        out = self.engine.count_tokens(text)
        self.requests.record(route, "POST", 200, time.perf_counter() - started)
        self._log(asked, text, out, finish)
        return _json(build(answer_id, self.name, text, finish, len(generation.tokens), out))

    def _log(self, asked: Asked, text: str, answer_tokens: int, finish: str) -> None:
        """A whole answer into the payload log (sampled), as the router logs one (generative/payloads.py)."""
        if self.payloads is None:
            return
        request_id, route, started, prompt, prompt_tokens = asked
        answer = answer_item(text, answer_tokens, finish)
        if not self.payloads.sampled():
            self.payloads.offer_unsampled(request_id, [unsampled(answer)])
            return
        record = RequestRecord(
            time=record_time(), request_id=request_id, model=self.name, version=self.version, route=route,
            latency_ms=round((time.perf_counter() - started) * 1000, 3),
            inputs=[prompt_item(prompt, prompt_tokens)], outputs=[answer],
        )  # fmt: skip
        self.payloads.offer_record(record)

    def _generation(self, request: Sampling) -> Generation:
        config = self.engine.config
        if isinstance(request, ChatRequest):
            messages = [{"role": m.role, "content": m.text} for m in request.messages]
            tokens, template_stops = self.engine.chat_tokens(messages)
            wanted, schema = request.token_limit or config.max_tokens, request.answer_schema
        else:
            assert isinstance(request, CompletionRequest)
            tokens, template_stops = self.engine.text_tokens(request.text), []
            wanted, schema = request.max_tokens or config.max_tokens, None
        if schema is not None:
            self.engine.grammar(schema)  # refused before a slot is taken: a 400 naming the schema
        return Generation(
            tokens=tokens,
            max_tokens=self.engine.check_fits(tokens, wanted),
            temperature=config.temperature if request.temperature is None else request.temperature,
            top_p=request.top_p or config.top_p,
            top_k=config.top_k,
            repeat_penalty=config.repeat_penalty,
            presence_penalty=request.presence_penalty or 0.0,
            frequency_penalty=request.frequency_penalty or 0.0,
            seed=config.seed if request.seed is None else request.seed,
            stop=[*(config.stop if request.stop is None else request.stops), *template_stops],
            schema=schema,
        )

    async def _pieces(self, generation: Generation, started: float) -> AsyncGenerator[Piece, None]:
        """The answer's pieces on a slot, with its metrics: queue time, first token, between tokens, tokens."""
        finish, text, last = "cancelled", "", None
        try:
            assert self.slots is not None  # ready: the lifespan started them
            async with self.slots.take() as (llama, waited):
                self.recorder.queue.observe(waited)
                async with contextlib.aclosing(self.engine.generate(llama, generation)) as pieces:
                    async for piece in pieces:
                        now = time.perf_counter()
                        if piece.text:
                            if last is None:
                                self.recorder.ttft.observe(now - started)
                            else:
                                self.recorder.inter_token.observe(now - last)
                            last = now
                        text += piece.text
                        if piece.finish:
                            finish = piece.finish
                        yield piece
        finally:
            self.recorder.finished(finish, len(generation.tokens), self.engine.count_tokens(text))

    async def _events(
        self, pieces: AsyncGenerator[Piece, None], answer_id: str, kind: str, include_usage: bool, asked: Asked
    ) -> AsyncIterator[bytes]:
        """The stream's server-sent events: a role first (chat), a chunk per piece, usage if asked, ``[DONE]``;
        a stream sent whole is logged (one the client left is not: it has no answer)."""
        prompt_tokens = asked[4]
        finish = "stop"
        chat = kind == "chat.completion"
        chunk_kind = "chat.completion.chunk" if chat else "text_completion"
        if chat:
            yield protocol.sse(protocol.chat_chunk(answer_id, self.name, {"role": "assistant", "content": ""}, None))
        text = ""
        try:
            async with contextlib.aclosing(pieces) as stream:
                async for piece in stream:
                    text += piece.text
                    finish = piece.finish or finish
                    if chat:
                        delta = {"content": piece.text} if piece.text else {}
                        yield protocol.sse(protocol.chat_chunk(answer_id, self.name, delta, piece.finish))
                    else:
                        yield protocol.sse(protocol.completion_chunk(answer_id, self.name, piece.text, piece.finish))
        except ClientError as exc:  # after the 200 was sent: the error is the stream's last event
            yield protocol.sse(orjson.loads(protocol.error_body(exc)))
        counted = self.engine.count_tokens(text)
        if include_usage:
            yield protocol.sse(protocol.usage_chunk(answer_id, self.name, chunk_kind, prompt_tokens, counted))
        yield protocol.sse("[DONE]")
        self._log(asked, text, counted, finish)


def create_app(
    engine: Engine, name: str, version: str, on_load_failure: Callable[[], None] | None = None,
    payload_log: PayloadLogConfig | None = None,
) -> Starlette:  # fmt: skip
    """The ASGI app of one served generative version; its engine loads (off the event loop) as it starts;
    ``payload_log``: prompts and answers logged (``serve --log-payloads``, ``generative/payloads.py``)."""
    endpoints = GenerationEndpoints(engine, name, version, payload_log)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        owned = not engine.loaded  # a test's engine, loaded once for many apps, stays loaded
        try:
            if owned:
                await anyio.to_thread.run_sync(engine.load)
        except Exception as exc:
            endpoints.load_failed(exc, on_load_failure)
        else:
            endpoints.slots = engine.start()
            endpoints.state = "ready"
        if payload_log is not None:
            from conveyor.serving.payloads import PayloadLog

            endpoints.payloads = PayloadLog(payload_log, name, version, logits=False, classifier=False)
        yield
        if endpoints.payloads is not None:
            await anyio.to_thread.run_sync(endpoints.payloads.close)  # finish (and upload) the open file
        if owned:
            engine.close()

    routes = [
        Route("/v1/chat/completions", endpoints.chat, methods=["POST"]),
        Route("/v1/completions", endpoints.completions, methods=["POST"]),
    ]
    return openai_app(endpoints, routes, lifespan)


def app_for(
    resolved: ResolvedModel, slots: int, context_size: int | None, threads: int | None,
    on_load_failure: Callable[[], None] | None = None, payload_log: PayloadLogConfig | None = None,
) -> Starlette:  # fmt: skip
    """The app serving a resolved GGUF version: its generation config is the ``generation.yaml`` beside it."""
    from conveyor.generative.config import config_in

    spec = resolved.spec
    engine = Engine(
        resolved.model_path,
        config_in(resolved.model_path.parent),
        slots=slots,
        context_size=context_size,
        trained_context=spec.gguf.context_length if spec.gguf else None,
        threads=threads,
    )
    return create_app(engine, spec.name, spec.version, on_load_failure, payload_log)
