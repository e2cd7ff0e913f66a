"""``conveyor router --data-plane nginx``: nginx carries the traffic, the router's control plane drives it.

The rendering and the access-log counting are pure and tested in milliseconds; one real router (nginx
and its control plane) in front of two stand-in backends then proves the journey: the split, a pin,
counters and the admin API unchanged, a change applied by a graceful reload, a table nginx refuses
left out, an unhealthy backend ejected, and a crash on either side (nginx killed: started again on
the last good config; control plane killed: nginx keeps serving it, and the next router takes over).
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
from collections import Counter
from pathlib import Path

import httpx
import pytest

from conveyor.router.health import HealthTracker
from conveyor.router.nginx import NginxDataPlane
from conveyor.router.nginx_config import Limits, Listen, check_for_nginx, group, live_weights, model_aware, render
from conveyor.router.routing import BackendSpec, RouteTable
from conveyor.router.stats import LIVE, RouterStats
from tests.machine import tool
from tests.rollout_fixtures import Proc, admin, spawn, start_fake, start_router, wait_for

LISTEN = Listen("127.0.0.1", 8080, 9001, 9002, 9003, Path("/run/r"), Path("/tmp/t"))


def _table(**extra: object) -> RouteTable:
    return RouteTable(
        backends=[
            BackendSpec(name="stable", url="http://127.0.0.1:5000", version="sentiment:1", weight=90),
            BackendSpec(name="canary", url="http://127.0.0.1:5001", version="sentiment:2", weight=10),
        ],
        **extra,  # type: ignore[arg-type]
    )


def test_the_split_pins_and_retries_are_rendered_as_nginx_directives() -> None:
    conf = render(_table(sticky_header="X-User-Id"), {"stable", "canary"}, LISTEN, Limits(), generation=3)
    assert "90.00% conveyor_b_stable;" in conf and "* conveyor_b_canary;" in conf
    assert 'split_clients "$conveyor_sticky_key"' in conf and "$http_x_user_id" in conf
    assert '"sentiment:2" conveyor_p_canary;' in conf and '"canary" conveyor_p_canary;' in conf
    assert "server 127.0.0.1:5001 backup;" in conf  # the one retry goes to the other backend
    assert 'return 200 "3";' in conf  # the generation a reload waits for
    assert "syslog:server=127.0.0.1:9002" in conf


def test_an_ejected_backend_leaves_the_split_and_its_weight_goes_to_the_others() -> None:
    table = _table()
    assert [(b.name, w) for b, w in live_weights(table, {"stable"})] == [("stable", 90)]
    conf = render(table, {"stable"}, LISTEN, Limits(), generation=1)
    assert "split_clients" not in conf and "default conveyor_b_stable;" in conf
    assert "server 127.0.0.1:5001 backup;" not in conf  # no retry onto the ejected one


def test_mirroring_and_payload_logging_take_the_model_aware_python_path() -> None:
    mirrored = _table(mirror_to="canary", mirror_percent=20)
    assert model_aware(mirrored, payload_log=False) and model_aware(_table(), payload_log=True)
    assert not model_aware(_table(), payload_log=False)
    assert "location / { proxy_pass http://conveyor_control;" in render(mirrored, set(), LISTEN, Limits(), 1)


def test_what_nginx_cannot_carry_is_refused_by_name() -> None:
    https = RouteTable(backends=[BackendSpec(name="stable", url="https://10.0.0.1:5000", weight=100)])
    with pytest.raises(Exception, match="http:// backends only"):
        check_for_nginx(https)


def test_access_log_lines_fill_the_same_counters_as_the_embedded_router() -> None:
    plane = NginxDataPlane("nginx", "127.0.0.1", 8080, 9001, Path("/nonexistent"), Limits())
    plane.table = _table()
    plane.groups = {group(b, kind): b for b in plane.table.backends for kind in "bp"}
    plane.stats, plane.health = RouterStats(), HealthTracker("/", 1.0)
    plane.health.sync(plane.table)
    plane.count("conveyor_b_stable|127.0.0.1:5000|200|0.000|0.004|0.004|/predict")
    plane.count("conveyor_b_stable|127.0.0.1:5000|200|0.000|0.002|0.002|/v2/health/ready")  # not a prediction
    # the canary refused the connection; the retry on stable answered
    plane.count("conveyor_b_canary|127.0.0.1:5001, 127.0.0.1:5000|502, 200|-, 0.000|-, 0.003|0.000, 0.003|/predict")
    stable, canary = plane.stats.of("stable", "sentiment:1", LIVE), plane.stats.of("canary", "sentiment:2", LIVE)
    assert (stable.requests, dict(stable.codes)) == (2, {"200": 2})
    assert dict(canary.codes) == {"connect_error": 1}
    assert plane.stats.retries[("canary", "sentiment:2")] == 1
    assert not plane.health.is_healthy("canary")  # a refused connection ejects, as in the embedded router


# -- the real thing ---------------------------------------------------------------------------------------


def _served(url: str, count: int, headers: dict[str, str] | None = None) -> Counter[str]:
    seen: Counter[str] = Counter()
    with httpx.Client(base_url=url, timeout=10) as client:
        for _ in range(count):
            answer = client.post("/predict", json=["good day"], headers=headers or {})
            seen[f"{answer.status_code} {answer.headers.get('x-conveyor-backend')}"] += 1
    return seen


def _nginx_pid(home: Path) -> int:
    return int((home / "rollouts" / "svc" / "nginx" / "nginx.pid").read_text())


def test_nginx_carries_the_split_and_survives_a_crash_on_either_side(conveyor_home: Path, tmp_path: Path) -> None:
    tool("nginx")
    stable, canary = start_fake(tmp_path, "good"), start_fake(tmp_path, "good")
    routers: list[Proc] = []
    try:
        router = start_router(
            tmp_path, "svc", "--data-plane", "nginx", "--stable", stable.url, "--stable-version", "1",
            "--canary", canary.url, "--canary-version", "2", "--canary-weight", "50",
        )  # fmt: skip
        routers.append(router)
        token = admin(router.url)
        seen = _served(router.url, 40)
        assert seen["200 stable"] + seen["200 canary"] == 40 and seen["200 stable"] > 5 and seen["200 canary"] > 5
        assert _served(router.url, 5, {"X-Conveyor-Version": "2"}) == Counter({"200 canary": 5})  # the pin

        # the admin API is the control plane's, token and all; its counters come from nginx's log
        assert httpx.get(router.url + "/_conveyor/stats", timeout=5).status_code == 401
        stats = wait_for(
            lambda: (
                (s := httpx.get(router.url + "/_conveyor/stats", headers=token, timeout=5).json())
                and sum(t["requests"] for t in s["traffic"]) >= 45
                and s
            ),
            10,
            "the access log counted",
        )
        assert {(t["backend"], t["version"]) for t in stats["traffic"]} == {("stable", "1"), ("canary", "2")}

        # a change is a graceful reload, live when the call returns; a table nginx refuses changes nothing
        table = httpx.get(router.url + "/_conveyor/routes", headers=token, timeout=5).json()
        for backend in table["backends"]:
            backend["weight"] = 100 if backend["name"] == "canary" else 0
            del backend["healthy"], backend["last_error"]
        del table["instance"]
        assert httpx.put(router.url + "/_conveyor/routes", json=table, headers=token, timeout=15).status_code == 200
        assert _served(router.url, 10) == Counter({"200 canary": 10})
        refused = {"backends": [{"name": "stable", "url": "http://no-such-host.invalid:1", "weight": 100}]}
        answer = httpx.put(router.url + "/_conveyor/routes", json=refused, headers=token, timeout=15)
        assert answer.status_code == 422 and "nginx refused" in answer.json()["error"]
        assert _served(router.url, 5) == Counter({"200 canary": 5})

        # an unhealthy backend is ejected: its share goes to the others, no client sees an error
        table["backends"][0]["weight"], table["backends"][1]["weight"] = 50, 50
        httpx.put(router.url + "/_conveyor/routes", json=table, headers=token, timeout=15).raise_for_status()
        canary.stop()
        wait_for(lambda: not _routes(router.url, token)["canary"], 10, "the canary ejected")
        assert _served(router.url, 10) == Counter({"200 stable": 10})

        # nginx killed: started again on the last good config
        os.kill(_nginx_pid(conveyor_home), signal.SIGKILL)
        wait_for(lambda: _up(router.url), 15, "nginx started again")
        assert _served(router.url, 5) == Counter({"200 stable": 5})

        # the control plane killed: nginx keeps serving its last config; the admin API fails clearly
        router.process.send_signal(signal.SIGKILL)
        router.process.wait(10)
        assert _served(router.url, 5) == Counter({"200 stable": 5})
        down = httpx.get(router.url + "/_conveyor/routes", headers=token, timeout=5)
        assert down.status_code == 502 and "control plane" in down.json()["error"]
        # the next router on the same state stops that nginx and serves the persisted table
        old = _nginx_pid(conveyor_home)
        port = router.url.rsplit(":", 1)[1]
        args = [sys.executable, "-m", "conveyor", "router", "--service", "svc", "--port", port, "--data-plane", "nginx"]
        again = spawn([*args, "--log-level", "warning"], tmp_path / "again.log", router.url, "/_conveyor/health")
        routers.append(again)
        assert _nginx_pid(conveyor_home) != old and _served(again.url, 5) == Counter({"200 stable": 5})
    finally:
        for proc in [*routers, stable, canary]:
            proc.stop()
        with contextlib.suppress(OSError, ValueError):  # an nginx left by a failed assertion above
            os.kill(_nginx_pid(conveyor_home), signal.SIGQUIT)


def _routes(url: str, token: dict[str, str]) -> dict[str, bool]:
    table = httpx.get(url + "/_conveyor/routes", headers=token, timeout=5).json()
    return {b["name"]: b["healthy"] for b in table["backends"]}


def _up(url: str) -> bool:
    try:
        return httpx.post(url + "/predict", json=["good"], timeout=2).status_code == 200
    except httpx.TransportError:
        return False
