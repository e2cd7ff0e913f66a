"""Server-sent events through the router: each event reaches the client as the backend sends it, a client
that leaves closes the backend's stream, and pinning, mirroring, the version's counts and the payload log
work for generations.  A real router (uvicorn) in front of small aiohttp backends that stream slowly, all in
one event loop: what is measured is when bytes arrive, which an in-process ASGI transport would hide."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import uvicorn
from aiohttp import web

from conveyor.containers import free_port
from conveyor.router.app import Router, RouterOptions
from conveyor.router.routing import BackendSpec, RouteTable
from conveyor.router.stats import LIVE, MIRROR
from conveyor.serving.payloads import PayloadLogConfig

GAP = 0.4  # seconds between the backend's events
CHAT = {"model": "chat", "messages": [{"role": "user", "content": "Hello there"}], "stream": True}


async def ready(request: web.Request) -> web.Response:
    return web.json_response({"ready": True})


class SlowStream:
    """A backend that answers a chat with ``events`` events, ``GAP`` apart, and notes how each stream ended."""

    def __init__(self, name: str, events: int = 3) -> None:
        self.name, self.events = name, events
        self.ended: list[str] = []
        self.asked = 0

    async def chat(self, request: web.Request) -> web.StreamResponse:
        await request.read()
        self.asked += 1
        response = web.StreamResponse(headers={"content-type": "text/event-stream", "cache-control": "no-cache"})
        await response.prepare(request)
        try:
            for index in range(self.events):
                if index:
                    await asyncio.sleep(GAP)
                finish = "stop" if index == self.events - 1 else None
                chunk = {"choices": [{"index": 0, "delta": {"content": f"word{index} "}, "finish_reason": finish}]}
                await response.write(b"data: " + json.dumps(chunk).encode() + b"\n\n")
            usage = {"choices": [], "usage": {"prompt_tokens": 12, "completion_tokens": self.events}}
            await response.write(b"data: " + json.dumps(usage).encode() + b"\n\ndata: [DONE]\n\n")
            await response.write_eof()
        except (ConnectionResetError, asyncio.CancelledError):
            self.ended.append("client left")
            raise
        self.ended.append("whole")
        return response

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self.chat)
        app.router.add_get("/v2/health/ready", ready)
        return app


@asynccontextmanager
async def serving(
    backends: list[SlowStream], options: RouterOptions, **table: Any
) -> AsyncIterator[tuple[str, list[str], Router]]:
    """The backends and a router in front of them: (router URL, backend URLs, router)."""
    runners, urls = [], []
    for backend in backends:
        runner = web.AppRunner(backend.app())
        await runner.setup()
        port = free_port()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        runners.append(runner)
        urls.append(f"http://127.0.0.1:{port}")
    specs = [
        BackendSpec(name=b.name, url=url, version=str(n + 1), weight=100 if n == 0 else 0)
        for n, (b, url) in enumerate(zip(backends, urls, strict=True))
    ]
    router = Router(RouteTable(backends=specs, **table), options)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(router, host="127.0.0.1", port=port, lifespan="on", log_level="warning"))
    task = asyncio.create_task(server.serve())
    while not server.started:
        await asyncio.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}", urls, router
    finally:
        server.should_exit = True
        await task
        for runner in runners:
            await runner.cleanup()


async def _first_event_and_end(session: aiohttp.ClientSession, url: str, **headers: str) -> tuple[float, float, bytes]:
    started = time.perf_counter()
    async with session.post(url + "/v1/chat/completions", json=CHAT, headers=headers) as response:
        assert response.status == 200 and response.content_type == "text/event-stream"
        first = await response.content.readline()
        first_at = time.perf_counter() - started
        rest = await response.read()
    return first_at, time.perf_counter() - started, first + rest


def test_events_pass_as_they_come_with_pins_mirrors_counts_and_the_payload_log(tmp_path: Path) -> None:
    stable, canary = SlowStream("stable"), SlowStream("canary")
    options = RouterOptions(retry=False, payload_log=PayloadLogConfig(str(tmp_path), sample=1.0), service="chat")

    async def main() -> dict[str, Any]:
        found: dict[str, Any] = {}
        async with serving([stable, canary], options, mirror_to="canary", mirror_percent=100) as (
            url,
            backends,
            router,
        ):
            async with aiohttp.ClientSession() as session:
                found["direct"] = await _first_event_and_end(session, backends[0])
                found["routed"] = await _first_event_and_end(session, url)
                async with session.post(
                    url + "/v1/chat/completions", json=CHAT, headers={"x-conveyor-version": "2"}
                ) as pinned:
                    found["pinned_by"] = pinned.headers.get("x-conveyor-backend")
                    await pinned.read()
            await router.mirrors.drain(timeout=5)
            found["counted"] = router.stats.of("stable", "1", LIVE).requests
            found["mirrored"] = router.stats.of("canary", "2", MIRROR).requests
        return found

    found = asyncio.run(main())
    direct_first, _, direct_body = found["direct"]
    routed_first, routed_end, routed_body = found["routed"]
    assert routed_first < GAP and routed_end > 2 * GAP  # the first event came while the backend still generated
    assert routed_first - direct_first < GAP / 2  # not held back: the router adds no wait of an event's gap
    assert routed_body == direct_body and routed_body.endswith(b"data: [DONE]\n\n")
    assert found["pinned_by"] == "canary" and found["counted"] == 1 and found["mirrored"] >= 1
    [logged] = [json.loads(line) for log in (tmp_path / "chat" / "1").glob("payloads-*.jsonl") for line in log.open()]
    assert logged["route"] == "/v1/chat/completions" and logged["backend"] == "stable"
    assert logged["inputs"] == [{"prompt": "Hello there", "prompt_tokens": 12}]
    answer = logged["outputs"][0]
    assert answer == {"answer": "word0 word1 word2 ", "answer_tokens": 3, "finish_reason": "stop", "refusal": False}


def test_a_client_that_leaves_a_stream_closes_the_backends_stream() -> None:
    backend = SlowStream("stable", events=20)

    async def main() -> tuple[list[str], float]:
        async with serving([backend], RouterOptions(retry=False)) as (url, _, _router):
            async with aiohttp.ClientSession() as session:
                response = await session.post(url + "/v1/chat/completions", json=CHAT)
                assert await response.content.readline()
                response.close()  # the client goes away after the first event
            left = time.perf_counter()
            while not backend.ended and time.perf_counter() - left < 10:
                await asyncio.sleep(0.05)
            return backend.ended, time.perf_counter() - left

    ended, after = asyncio.run(main())
    assert ended == ["client left"] and after < 10 * GAP  # long before its 20 events would have ended it
