"""``conveyor router``: a reverse proxy in front of model-server backends, driven by the rollout controller.

A raw ASGI app on uvicorn (httptools, uvloop) with one pooled aiohttp client (the ``[router]`` extra, which
``conveyor router`` checks before importing this): the hot path reads the body, picks a backend from the current
table, forwards, counts and answers. Admin endpoints live under ``/_conveyor/`` (``router/admin.py``, a token
required); ``/metrics`` is the router's own Prometheus exposition. Measured in ``benchmarks/router``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import aiohttp
from prometheus_client import CollectorRegistry

from conveyor import tracing
from conveyor.atomic import write_atomic
from conveyor.errors import ClientError
from conveyor.request_ids import HEADER as REQUEST_ID
from conveyor.request_ids import client_request_id, new_request_id
from conveyor.router.admin import is_admin_path, serve_admin
from conveyor.router.answer import Answer, Unanswered
from conveyor.router.asgi import HOP_BY_HOP, Receive, Send, TooLarge, error_body, read_body, send_json
from conveyor.router.generations import answer_text, is_generation
from conveyor.router.health import HealthTracker
from conveyor.router.inputs import input_features
from conveyor.router.mirror import Mirrors, answered
from conveyor.router.predictions import read_predictions
from conveyor.router.requests import RecentRequests
from conveyor.router.routes import is_prediction
from conveyor.router.routing import PIN_HEADER, SERVED_BY_HEADER, BackendSpec, RouteTable, pick
from conveyor.router.stats import LIVE, RouterStats, StatsCollector, TrafficStats
from conveyor.router.stream import is_event_stream, relay

if TYPE_CHECKING:
    from conveyor.router.nginx import NginxDataPlane
    from conveyor.router.payload_log import RouterPayloads
    from conveyor.router.tracing import Forward, Proxy
    from conveyor.serving.payloads import PayloadLogConfig

log = logging.getLogger("conveyor.router")


@dataclass
class RouterOptions:
    health_path: str = "/v2/health/ready"
    health_interval: float = 1.0
    timeout: float = 60.0
    max_body_bytes: int = 16 * 1024 * 1024
    max_mirrors_in_flight: int = 32
    retry: bool = True  # once more on another backend when the connection failed or was reset before an answer
    admin_token: str | None = None  # the admin API's bearer token; None: its protected calls are refused
    state_file: Path | None = None
    service: str = "default"  # the model name of backends whose version label is bare ("2", not "sentiment:2")
    payload_log: PayloadLogConfig | None = None  # log a sample of /predict traffic per backend version


def load_table(path: Path) -> RouteTable:
    return RouteTable.model_validate_json(path.read_bytes())


def save_table(table: RouteTable, path: Path) -> None:
    """Write atomically: a crash mid-write leaves the previous table, never half of one."""
    write_atomic(path, table.model_dump_json(indent=2))


class Router:
    """The ASGI application. ``table`` may be replaced at any time through :meth:`set_table`."""

    def __init__(
        self, table: RouteTable, options: RouterOptions | None = None, data_plane: NginxDataPlane | None = None
    ) -> None:
        self.options = options or RouterOptions()
        self.data_plane = data_plane  # nginx carries the traffic (``--data-plane nginx``); None: this app does
        self.table = table
        self.stats = RouterStats()
        self.health = HealthTracker(self.options.health_path, self.options.health_interval)
        self.health.sync(table)
        self.session: aiohttp.ClientSession | None = None
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(StatsCollector(self.stats, self._describe_backends))
        self._probe: asyncio.Task[None] | None = None
        self._timeout = aiohttp.ClientTimeout(total=self.options.timeout)
        # a generation may stream for longer than any answer takes: its bound is the wait for each next chunk
        self._stream_timeout = aiohttp.ClientTimeout(sock_connect=self.options.timeout, sock_read=self.options.timeout)
        self.mirrors = Mirrors(self.stats, self.health, self.options.max_mirrors_in_flight, self._timeout)
        self.recent = RecentRequests(self.options.service)
        self.passing_on: set[asyncio.Task[None]] = set()  # feedback on its way to backends
        self.payloads: RouterPayloads | None = None
        if self.options.payload_log is not None:
            from conveyor.router.payload_log import RouterPayloads  # numpy and the writer only where asked
            from conveyor.serving.payloads import RECORDS

            self.payloads = RouterPayloads(self.options.payload_log, self.recent)
            self.registry.register(RECORDS)
        self.proxy: Proxy = self._proxy  # the hop and its tries of a backend, traced when tracing is on
        self.forward: Forward = self._forward
        if tracing.configure("conveyor-router"):  # OTEL_EXPORTER_OTLP_ENDPOINT is set
            from conveyor.router.tracing import traced

            self.proxy, self.forward = traced(self._proxy, self._forward, self.options.service)
        self._reloads: set[asyncio.Task[None]] = set()
        if data_plane is not None:
            self.health.on_change = self._health_changed

    def _describe_backends(self) -> list[tuple[str, str, float, bool]]:
        return [(b.name, b.version, b.weight, self.health.is_healthy(b.name)) for b in self.table.backends]

    def set_table(self, table: RouteTable) -> None:
        self.health.sync(table)
        self.table = table
        if self.options.state_file is not None:
            save_table(table, self.options.state_file)
        log.info("routes: %s", ", ".join(f"{b.name}={b.weight:g}%" for b in table.backends) or "none")

    async def replace_table(self, table: RouteTable) -> None:
        """The admin API's change: applied to the external data plane first (it may refuse), then kept."""
        if self.data_plane is not None:
            previous = self.table
            self.health.sync(table)  # the new table's backends, for the split nginx renders
            try:
                await self.data_plane.apply(table)
            except Exception:
                self.health.sync(previous)
                raise
        self.set_table(table)

    def _health_changed(self) -> None:
        """A backend was ejected or readmitted: nginx's split follows (a reload, off the caller's path)."""
        assert self.data_plane is not None
        task = asyncio.create_task(self._reapply(), name="nginx-reload")
        self._reloads.add(task)
        task.add_done_callback(self._reloads.discard)

    async def _reapply(self) -> None:
        assert self.data_plane is not None
        try:
            await self.data_plane.apply(self.table)
        except Exception:
            log.exception("nginx kept its last config: the health change could not be applied")

    # -- ASGI -------------------------------------------------------------------------------------------

    async def __call__(self, scope: dict[str, Any], receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        path: str = scope["path"]
        if is_admin_path(path):
            await serve_admin(self, scope, receive, send)
            return
        await self.proxy(scope, receive, send)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                connector = aiohttp.TCPConnector(limit=0, ttl_dns_cache=300)
                self.session = aiohttp.ClientSession(connector=connector, auto_decompress=False)
                self._probe = asyncio.create_task(self.health.probe_forever(self.session), name="health-checks")
                if self.data_plane is not None:
                    try:
                        await self.data_plane.start(self.table, self.stats, self.health)
                    except Exception as exc:
                        await send({"type": "lifespan.startup.failed", "message": str(exc)})
                        return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if self.data_plane is not None:
                    await self.data_plane.stop()
                if self._probe is not None:
                    self._probe.cancel()
                await self.mirrors.drain(timeout=5)
                if self.passing_on:
                    await asyncio.wait(self.passing_on, timeout=5)
                if self.session is not None:
                    await self.session.close()
                if self.payloads is not None:
                    await asyncio.to_thread(self.payloads.close)  # finish (and upload) the open files
                await send({"type": "lifespan.shutdown.complete"})
                return

    # -- the hot path -----------------------------------------------------------------------------------

    async def _proxy(self, scope: dict[str, Any], receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        try:
            body = await read_body(receive, self.options.max_body_bytes)
        except TooLarge:
            await send_json(send, 413, {"error": f"request body over {self.options.max_body_bytes} bytes"})
            return
        except ConnectionResetError:
            return
        table = self.table
        sticky_name = table.sticky_header.encode() if table.sticky_header else None
        pin = sticky = None
        request_id = ""
        forward: list[tuple[str, str]] = []
        for key, value in scope["headers"]:
            if key == b"x-conveyor-version":
                pin = value.decode("latin-1")
            elif key == REQUEST_ID:
                request_id = client_request_id(value)
            elif key not in HOP_BY_HOP:
                forward.append((key.decode("latin-1"), value.decode("latin-1")))
            if key == sticky_name:
                sticky = value.decode("latin-1")
        client = scope.get("client")
        if client:
            forward.append(("x-forwarded-for", client[0]))
        method: str = scope["method"]
        if method == "POST":  # one id for the router, the backend and their logs
            request_id = request_id or new_request_id()
            forward.append(("x-request-id", request_id))
            if scope["path"] == "/feedback":
                if self.payloads is not None:
                    await self._feedback(body, send)
                    return
                pin = pin or self.recent.backend_of(body)  # to the backend that answered the request
        candidates = pick(table, self.health.healthy_names(), pin, sticky)
        if not candidates:
            await send_json(send, 503, {"error": "the router has no backend to send this request to"})
            return
        target = scope["raw_path"].decode("latin-1")
        if scope.get("query_string"):
            target += "?" + scope["query_string"].decode("latin-1")
        attempts = candidates[:2] if self.options.retry and not pin else candidates[:1]
        for number, backend in enumerate(attempts):
            answer = await self.forward(backend, method, target, body, forward, retryable=number + 1 < len(attempts))
            if isinstance(answer, Unanswered):
                continue  # the connection failed before any answer: try the next backend
            status, headers, data, predictions = answer.status, answer.headers, answer.body, answer.predictions
            if request_id and not any(key.lower() == REQUEST_ID for key, _ in headers):
                headers.append((REQUEST_ID, request_id.encode()))  # a backend that does not echo it
            await send({"type": "http.response.start", "status": status, "headers": headers})
            if answer.stream is None:
                await send({"type": "http.response.body", "body": data})
            else:  # server-sent events: each as it comes; what was relayed is what is logged and compared
                relayed = await relay(answer.stream, receive, send)
                if relayed is None:
                    return  # the client left, or the stream broke off or ran long: nothing whole to log
                data = relayed
                text = answer_text(data) if is_prediction(method, scope["path"]) else None
                if text is not None:  # the streamed answer's text, for the canary analysis as a whole one's
                    traffic = self.stats.of(backend.name, backend.version, LIVE)
                    traffic.answers.append(text)
                    traffic.answers_seen += 1
            if status == 200 and table.splits and scope["path"] == "/predict" and method == "POST":
                self.stats.of(backend.name, backend.version, LIVE).observe_inputs(input_features(body))
            if status == 200 and request_id:
                served = self.recent.remember(request_id, backend)
                if self.payloads is not None:
                    seconds = time.perf_counter() - started
                    self.payloads.answered(served, request_id, scope["path"], seconds, body, data)
            if table.mirror_to and table.mirror_percent > 0 and status == 200 and backend.name != table.mirror_to:
                request = (method, target, scope["path"], body, forward)
                self.mirrors.maybe(self.session, table, request, predictions, data)  # type: ignore[arg-type]
            return
        await send_json(send, 502, {"error": "no backend could be reached: " + ", ".join(b.name for b in attempts)})

    async def _forward(
        self,
        backend: BackendSpec,
        method: str,
        target: str,
        body: bytes,
        headers: list[tuple[str, str]],
        retryable: bool,
    ) -> Answer | Unanswered:
        assert self.session is not None
        path = target.split("?", 1)[0]
        # only predictions judge a version: a metadata or health GET sent through the router would make
        # an idle canary look busy and healthy (as the exported Argo analysis counts, rollout/promql.py)
        stats = self.stats.of(backend.name, backend.version, LIVE) if is_prediction(method, path) else None
        started = time.perf_counter()
        stream: aiohttp.ClientResponse | None = None
        timeout = self._stream_timeout if is_generation(path) else self._timeout
        try:
            response = await self.session.request(
                method, backend.url + target, data=body, headers=headers, allow_redirects=False, timeout=timeout
            )
            try:
                status, raw_headers = response.status, response.raw_headers
                if is_event_stream(response):
                    stream, data = response, b""  # relayed as it comes (router/stream.py)
                else:
                    data = await response.read()
            finally:
                if stream is None:
                    response.release()
        except aiohttp.ClientConnectorError as exc:
            return self._unreachable(backend, stats, started, "connect_error", exc, retryable, eject=True)
        except (aiohttp.ServerDisconnectedError, aiohttp.ClientOSError) as exc:
            return self._unreachable(backend, stats, started, "connection_lost", exc, retryable, eject=False)
        except TimeoutError:
            if stats is not None:
                stats.observe("timeout", time.perf_counter() - started)
            message = f"backend {backend.name} did not answer in time"
            return Answer(504, _json_headers(backend), error_body(message), None, error="timeout")
        except aiohttp.ClientError as exc:
            if stats is not None:
                stats.observe("backend_error", time.perf_counter() - started)
            message = f"backend {backend.name} failed: {type(exc).__name__}"
            return Answer(502, _json_headers(backend), error_body(message), None, error="backend_error")
        elapsed = time.perf_counter() - started
        predictions = read_predictions(path, data) if status == 200 and method == "POST" else None
        if stats is not None:
            streamed = stream is not None  # a stream's text is kept once it has been relayed (_proxy)
            text = answer_text(data) if status == 200 and is_generation(path) and not streamed else None
            stats.observe(str(status), elapsed, *answered(predictions), answer=text)
        if status in (502, 503):
            self.health.failed(backend.name, f"answered HTTP {status}")
        answer_headers = [(k, v) for k, v in raw_headers if k.lower() not in HOP_BY_HOP]
        if stream is None:
            answer_headers.append((b"content-length", str(len(data)).encode()))
        answer_headers.append((SERVED_BY_HEADER.encode(), backend.name.encode()))
        if backend.version:
            answer_headers.append((PIN_HEADER.encode(), backend.version.encode()))
        return Answer(status, answer_headers, data, predictions, stream=stream)

    def _unreachable(
        self,
        backend: BackendSpec,
        stats: TrafficStats | None,
        started: float,
        code: str,
        exc: Exception,
        retryable: bool,
        eject: bool,
    ) -> Answer | Unanswered:
        if stats is not None:  # a prediction's failure counts against the version; a GET's ejects it all the same
            stats.observe(code, time.perf_counter() - started)
        self.health.failed(backend.name, f"{type(exc).__name__}: {exc}", eject=eject)
        if retryable:
            self.stats.retries[(backend.name, backend.version)] += 1
            return Unanswered(code)
        message = f"backend {backend.name} unreachable: {type(exc).__name__}"
        return Answer(502, _json_headers(backend), error_body(message), None, error=code)

    async def _feedback(self, body: bytes, send: Send) -> None:
        """``POST /feedback`` at a logging router: into the log of the version each request reached."""
        assert self.payloads is not None and self.session is not None
        backends = {b.name: b for b in self.table.backends}
        try:
            answer, passed_on = await self.payloads.feedback(body, backends, self.session)
        except ClientError as exc:
            await send_json(send, exc.status, {"error": exc.message})
            return
        await send_json(send, 202, answer)
        for name, entries in passed_on.items():
            backend = backends.get(name)
            if backend is not None:
                task = asyncio.create_task(self._pass_on(backend.url + "/feedback", entries))
                self.passing_on.add(task)
                task.add_done_callback(self.passing_on.discard)

    async def _pass_on(self, url: str, entries: list[dict[str, Any]]) -> None:
        """Feedback on to the backend that answered (a backend without a log answers 409: fine)."""
        assert self.session is not None
        with contextlib.suppress(aiohttp.ClientError, TimeoutError):
            async with self.session.post(url, json=entries, timeout=self._timeout) as answer:
                await answer.read()


def _json_headers(backend: BackendSpec) -> list[tuple[bytes, bytes]]:
    return [(b"content-type", b"application/json"), (SERVED_BY_HEADER.encode(), backend.name.encode())]
