"""The router counts only predictions against a version: GETs and feedback through it are proxied, not judged.

An idle canary must stay inconclusive on the laptop as in the exported Argo analysis: metadata and
health calls a client sends through the router reach the backend, and no analysis sees them.
"""

from __future__ import annotations

import asyncio

import aiohttp
import httpx
from aiohttp import web

from conveyor.containers import free_port
from conveyor.router.app import Router, RouterOptions
from conveyor.router.routes import is_prediction, route_of
from conveyor.router.routing import BackendSpec, RouteTable
from conveyor.router.stats import LIVE
from conveyor.serving import metrics


def _backend() -> web.Application:
    async def answer(request: web.Request) -> web.Response:
        return web.json_response({"positive": True} if request.path == "/predict" else {"ready": True})

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", answer)
    return app


def test_only_prediction_posts_count_in_the_versions_traffic() -> None:
    async def main() -> tuple[int, int, list[int]]:
        runner = web.AppRunner(_backend())
        await runner.setup()
        port = free_port()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        table = RouteTable(
            backends=[BackendSpec(name="canary", url=f"http://127.0.0.1:{port}", version="2", weight=100)]
        )
        router = Router(table, RouterOptions(retry=False))
        router.session = aiohttp.ClientSession()
        try:
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=router), base_url="http://r") as client:
                statuses = [
                    (await client.get(path)).status_code
                    for path in ("/v2/health/ready", "/v2/models/m", "/v2/models/m/ready", "/metrics")
                ]
                idle = router.stats.of("canary", "2", LIVE).requests
                for _ in range(3):
                    statuses.append((await client.post("/predict", json=["good"])).status_code)
                busy = router.stats.of("canary", "2", LIVE).requests
        finally:
            await router.session.close()
            await runner.cleanup()
        return idle, busy, statuses

    idle, busy, statuses = asyncio.run(main())
    assert statuses == [200] * 7  # every request was proxied
    assert (idle, busy) == (0, 3)


def test_every_prediction_route_of_the_server_is_one_the_router_counts() -> None:
    examples = {
        "/predict": "/predict",
        "/invocations": "/invocations",
        "/v2/models/{name}/infer": "/v2/models/churn/infer",
        "/v2/models/{name}/versions/{version}/infer": "/v2/models/churn/versions/3/infer",
        "/v1/chat/completions": "/v1/chat/completions",
        "/v1/completions": "/v1/completions",
    }
    assert set(examples) == set(metrics.PREDICTION_ROUTES)
    for template, path in examples.items():
        assert route_of(path) == template and is_prediction("POST", path)
    assert not is_prediction("GET", "/predict") and not is_prediction("POST", "/feedback")
    assert not is_prediction("POST", "/v2/repository/index")
