"""Who may do what on each control plane: the matrix docs/security.md states, tried request by request.

Each action of the router's admin API, the registry server and the dashboard is tried anonymously,
with a read token, with a revoked token, with a write token and with an admin token (the router has
one admin token of its own: a registry token of any scope, or the router's previous token, is no
credential there; on the dashboard, "revoked" is a session whose token was revoked after login). In-process
(ASGI) on loopback; the refusal to start beyond loopback without tokens is tried on the real
commands, which exit before binding. The takeover of issue 44 (an anonymous PUT of the routes to an
attacker's server) is refused.
"""

from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from starlette.testclient import TestClient

from conveyor.errors import InvalidInput
from conveyor.exposure import cleartext_warning, is_loopback, refuse_open_exposure
from conveyor.redaction import without_credentials
from conveyor.registry.config import open_local
from conveyor.registry.local import LocalRegistry
from conveyor.registry.server import create_registry_app
from conveyor.rollout.router_token import forget_local_token, local_token, token_file, token_for
from conveyor.rollout.status import Backend, RolloutStatus, StatusStore, write_router_address
from conveyor.router.app import Router, RouterOptions
from conveyor.router.routing import BackendSpec, RouteTable
from conveyor.ui.app import create_app
from tests.registry_fixtures import run_cli

WHO = ("anonymous", "read", "revoked", "write", "admin")


@dataclass
class Credentials:
    """The bearer token each caller presents (None: none at all)."""

    tokens: dict[str, str | None]

    def headers(self, who: str) -> dict[str, str]:
        token = self.tokens[who]
        return {"Authorization": f"Bearer {token}"} if token else {}


@pytest.fixture
def registry(conveyor_home: Path) -> LocalRegistry:
    return open_local()


@pytest.fixture
def registry_tokens(registry: LocalRegistry) -> Credentials:
    revoked = registry.tokens.create("former-ci", "write")
    registry.tokens.revoke("former-ci")
    read, write = registry.tokens.create("viewer", "read"), registry.tokens.create("ci", "write")
    admin = registry.tokens.create("security", "admin")
    return Credentials({"anonymous": None, "read": read, "revoked": revoked, "write": write, "admin": admin})


# -- the router's admin API --------------------------------------------------------------------------

STABLE = BackendSpec(name="stable", url="http://team:s3cret@127.0.0.1:9", version="txt:1", weight=100)
TAKEOVER = {"backends": [{"name": "stable", "url": "http://127.0.0.1:6666", "version": "txt:1", "weight": 100}]}
ROUTER_ACTIONS: dict[str, tuple[str, str, dict | None]] = {  # type: ignore[type-arg]
    "read routes": ("GET", "/_conveyor/routes", None),
    "read stats": ("GET", "/_conveyor/stats", None),
    "put routes": ("PUT", "/_conveyor/routes", TAKEOVER),
}


@pytest.fixture
def router(registry_tokens: Credentials) -> Iterator[tuple[Router, TestClient, Credentials]]:
    app = Router(RouteTable(backends=[STABLE]), RouterOptions(admin_token="router-admin-token"))
    callers = Credentials(  # the router knows one token; a registry token or its previous one is nothing to it
        {
            "anonymous": None,
            "read": registry_tokens.tokens["read"],
            "revoked": "router-old-token",
            "write": registry_tokens.tokens["write"],
            "admin": "router-admin-token",
        }
    )
    with TestClient(app) as client:  # raw ASGI: no lifespan needed for the admin API
        yield app, client, callers


@pytest.mark.parametrize("who", WHO)
@pytest.mark.parametrize("action", list(ROUTER_ACTIONS))
def test_the_router_admin_api_needs_the_router_admin_token(
    router: tuple[Router, TestClient, Credentials], action: str, who: str
) -> None:
    app, client, callers = router
    method, path, body = ROUTER_ACTIONS[action]
    answer = client.request(method, path, json=body, headers=callers.headers(who))
    if who == "admin":
        assert answer.status_code == 200, answer.text
    else:
        assert answer.status_code == 401, answer.text
        assert "admin token" in answer.json()["error"] and answer.headers["www-authenticate"].startswith("Bearer")
        assert app.table.backends == [STABLE], "a refused call changed the routes"


def test_the_takeover_of_issue_44_is_refused(router: tuple[Router, TestClient, Credentials]) -> None:
    """An anonymous PUT of the routes to an attacker's server labelled as the signed stable version."""
    app, client, _ = router
    for headers in ({}, {"Authorization": "Bearer "}, {"Authorization": "Basic router-admin-token"}):
        assert client.put("/_conveyor/routes", json=TAKEOVER, headers=headers).status_code == 401
    assert app.table.backends == [STABLE]
    # Unknown admin paths do not tell an anonymous caller what exists.
    assert client.get("/_conveyor/nothing").status_code == 401


def test_probes_scrapes_and_the_api_description_stay_open(router: tuple[Router, TestClient, Credentials]) -> None:
    _, client, _ = router
    assert client.get("/_conveyor/health").json()["status"] == "ok"  # load balancers, Kubernetes probes
    metrics = client.get("/metrics")  # Prometheus scrapes without credentials: counters, never a URL
    assert metrics.status_code == 200 and "s3cret" not in metrics.text and "127.0.0.1:9" not in metrics.text
    assert client.get("/_conveyor/openapi.json").json()["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"


def test_backend_urls_leave_the_router_without_credentials_and_a_round_trip_keeps_them(
    router: tuple[Router, TestClient, Credentials],
) -> None:
    app, client, callers = router
    admin = callers.headers("admin")
    shown = client.get("/_conveyor/routes", headers=admin)
    assert "s3cret" not in shown.text and shown.json()["backends"][0]["url"] == "http://127.0.0.1:9"
    table = {k: v for k, v in shown.json().items() if k != "instance"}
    table["backends"] = [{k: v for k, v in b.items() if k not in ("healthy", "last_error")} for b in table["backends"]]
    table["backends"][0]["weight"] = 100.0
    assert client.put("/_conveyor/routes", json=table, headers=admin).status_code == 200
    assert app.table.backends[0].url == STABLE.url  # the router still holds the credentials it calls with
    assert without_credentials("https://u:p@w@h.example:8443/v2?q=a@b") == "https://h.example:8443/v2?q=a@b"
    assert without_credentials("http://127.0.0.1:5000") == "http://127.0.0.1:5000"


def test_a_loopback_router_stores_its_token_for_the_local_tools_only(conveyor_home: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.delenv("CONVEYOR_ROUTER_TOKEN", raising=False)
    write_router_address("svc", "http://127.0.0.1:8080")
    made = local_token("svc")
    assert stat.S_IMODE(os.stat(token_file("svc")).st_mode) == 0o600
    assert local_token("svc") == made, "kept across restarts, like the routes"
    assert token_for("http://127.0.0.1:8080/") == made and token_for("http://127.0.0.1:9999") is None
    assert token_for("http://127.0.0.1:8080", "given") == "given"
    monkeypatch.setenv("CONVEYOR_ROUTER_TOKEN", "from-the-variable")
    assert token_for("http://127.0.0.1:8080") == "from-the-variable"
    forget_local_token("svc")  # a token given by the user is never stored
    assert not token_file("svc").exists()


def test_a_guessable_router_token_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    from conveyor.router.settings import RouterSettings

    monkeypatch.setenv("CONVEYOR_ROUTER_TOKEN", "hunter2")
    with pytest.raises(InvalidInput, match="at least 16 characters") as refused:
        RouterSettings.load({})
    assert "hunter2" not in str(refused.value) and "CONVEYOR_ROUTER_TOKEN" in str(refused.value)


# -- the registry server ----------------------------------------------------------------------------

BLOB = b"a model of some bytes"
DIGEST = hashlib.sha256(BLOB).hexdigest()


def _register(client: TestClient, headers: dict[str, str]) -> httpx.Response:
    uploaded = client.put(f"/api/v1/blobs/{DIGEST}", content=BLOB, headers=headers)
    if uploaded.status_code != 201:
        return uploaded
    files = {"files": [{"path": "model.onnx", "sha256": DIGEST, "size": len(BLOB)}]}
    return client.post("/api/v1/models/m/versions", json=files, headers=headers)


TAGS = "/api/v1/models/m/tags"
POLICY = "require-signed"
REGISTRY_ACTIONS: dict[str, tuple[str, Callable[[TestClient, dict[str, str]], httpx.Response]]] = {
    # action: (the scope it needs, the request)
    "read a version": ("read", lambda c, h: c.get("/api/v1/models/m/versions/1", headers=h)),
    "register": ("write", _register),
    "delete a version": ("write", lambda c, h: c.delete("/api/v1/models/m/versions/2", headers=h)),
    "set a tag": ("write", lambda c, h: c.patch(TAGS, json={"set": {"team": "x"}}, headers=h)),
    "unset a tag": ("write", lambda c, h: c.patch(TAGS, json={"unset": ["owner"]}, headers=h)),
    "tighten the signing policy": ("write", lambda c, h: c.patch(TAGS, json={"set": {POLICY: "yes"}}, headers=h)),
    "relax the signing policy": ("admin", lambda c, h: c.patch(TAGS, json={"unset": [POLICY]}, headers=h)),
}
SCOPES = ("read", "write", "admin")


@pytest.fixture
def registry_server(registry: LocalRegistry, registry_tokens: Credentials) -> Iterator[TestClient]:
    with TestClient(create_registry_app(registry, require_auth=True)) as client:
        write = registry_tokens.headers("write")
        for _ in range(2):  # versions 1 and 2
            assert _register(client, write).status_code == 201
        assert client.patch(TAGS, json={"set": {"owner": "a", POLICY: "true"}}, headers=write).status_code == 200
        yield client


@pytest.mark.parametrize("who", WHO)
@pytest.mark.parametrize("action", list(REGISTRY_ACTIONS))
def test_the_registry_server_checks_token_and_scope(
    registry_server: TestClient, registry_tokens: Credentials, action: str, who: str
) -> None:
    needs, call = REGISTRY_ACTIONS[action]
    answer = call(registry_server, registry_tokens.headers(who))
    if who in ("anonymous", "revoked"):
        expected = 401
    elif SCOPES.index(who) < SCOPES.index(needs):
        expected = 403
    else:
        expected = 201 if action == "register" else 200
    assert answer.status_code == expected, answer.text


# -- the dashboard ----------------------------------------------------------------------------------


def _aborted_rollout() -> None:
    StatusStore("svc").create(
        RolloutStatus(
            service="svc",
            strategy="canary",
            ref="m:2",
            router="http://127.0.0.1:9",
            steps=[20, 100],
            interval_s=5,
            phase="aborted",
            stable=Backend(ref="m:1", version="m:1"),
            canary=Backend(ref="m:2", version="m:2"),
        )
    )


def _csrf(client: TestClient) -> str:
    """The session's CSRF token, as the login form carries it (made for anonymous sessions too)."""
    return client.get("/login").text.split('name="csrf" value="')[1].split('"')[0]


@pytest.mark.parametrize("who", WHO)
def test_the_dashboard_needs_a_live_login_to_read_write_to_act_and_admin_for_the_audit_log(
    registry: LocalRegistry, registry_tokens: Credentials, who: str
) -> None:
    _aborted_rollout()
    client = TestClient(create_app(registry, tokens=registry.tokens, require_login=True))
    token = registry.tokens.create("ops", "write") if who == "revoked" else registry_tokens.tokens[who]
    if token is not None:
        login = client.post("/login", data={"token": token, "csrf": _csrf(client)}, follow_redirects=False)
        assert login.status_code == 303, login.text
    if who == "revoked":
        registry.tokens.revoke("ops")  # after the login: the session ends at once
    page = client.get("/rollouts/svc")
    assert page.status_code == (401 if who in ("anonymous", "revoked") else 200)
    # CSRF passes in every case: what decides is who is logged in
    pressed = client.post("/rollouts/svc/actions/abort", data={"csrf": _csrf(client)}, headers={"hx-request": "true"})
    audit = client.get("/audit", headers={"accept": "application/json"})
    if who in ("write", "admin"):
        assert pressed.status_code == 409 and "aborted" in pressed.json()["error"]  # authorised: nothing to abort
    elif who == "read":
        assert pressed.status_code == 403 and "read scope" in pressed.json()["error"]
    else:
        assert pressed.status_code == 401, pressed.text
    assert audit.status_code == {"anonymous": 401, "revoked": 401, "read": 403, "write": 403, "admin": 200}[who]


def test_a_revoked_token_cannot_log_in_to_the_dashboard(registry: LocalRegistry, registry_tokens: Credentials) -> None:
    client = TestClient(create_app(registry, tokens=registry.tokens))
    token = registry_tokens.tokens["revoked"]
    login = client.post("/login", data={"token": token, "csrf": _csrf(client)}, follow_redirects=False)
    assert login.status_code == 401 and "revoked" in login.text


# -- beyond loopback without tokens: no start ------------------------------------------------------

REFUSED_STARTS = {
    "router": ["router", "--host", "0.0.0.0"],
    "registry server": ["registry", "serve", "--host", "0.0.0.0", "--insecure-no-auth"],
    "dashboard": ["ui", "--host", "0.0.0.0"],
}


@pytest.mark.parametrize("component", list(REFUSED_STARTS))
def test_a_control_plane_beyond_loopback_without_tokens_refuses_to_start(
    conveyor_home: Path, monkeypatch: pytest.MonkeyPatch, component: str
) -> None:
    monkeypatch.delenv("CONVEYOR_ROUTER_TOKEN", raising=False)
    refused = run_cli(*REFUSED_STARTS[component], "--port", "1", timeout=60)
    lines = refused.stderr.strip().splitlines()
    assert refused.returncode == 2 and len(lines) == 1, refused.stderr
    assert lines[0].startswith(f"error: refusing to start the {component} on 0.0.0.0 without authentication")
    assert lines[0].endswith("or bind 127.0.0.1")


@pytest.mark.parametrize(
    "host, loopback",
    [("127.0.0.1", True), ("127.8.9.10", True), ("::1", True), ("[::1]", True), ("localhost", True),
     ("LOCALHOST", True), ("0.0.0.0", False), ("::", False), ("10.0.0.5", False), ("192.168.1.2", False),
     ("fe80::1", False), ("example.com", False), ("", False)],
)  # fmt: skip
def test_loopback_is_127_0_0_0_slash_8_and_ipv6_1_and_localhost(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback
    if loopback:
        refuse_open_exposure("router", host, False, "give it a token")
    else:
        with pytest.raises(InvalidInput, match=r"give it a token, or bind 127\.0\.0\.1"):
            refuse_open_exposure("router", host, False, "give it a token")
    refuse_open_exposure("router", host, True, "give it a token")  # with tokens, any address
    # beyond loopback over plain HTTP, the start says that tokens cross the network readable
    assert (cleartext_warning("router", host, tls=False) is None) is loopback
    assert cleartext_warning("router", host, tls=True) is None


def test_the_dashboards_plain_http_warning_offers_only_ways_it_has(conveyor_home: Path) -> None:
    """conveyor ui has no --tls-cert: its warning names a proxy or registry serve --ui, not an option it lacks."""
    from conveyor.cli.ui import DASHBOARD_HTTPS

    line = cleartext_warning("dashboard", "0.0.0.0", tls=False, how_to_serve_https=DASHBOARD_HTTPS)
    assert line is not None and line.startswith("warning: the dashboard on 0.0.0.0 speaks plain HTTP")
    assert "(a TLS-terminating proxy in front, or conveyor registry serve --ui --tls-cert/--tls-key)" in line
    assert "--tls-cert" not in run_cli("ui", "--help", check=True).stdout
