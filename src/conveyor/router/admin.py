"""The router's admin API (``/_conveyor/``): who may read and change the routing table, and how.

Everything here but the probes needs ``Authorization: Bearer <admin token>``, compared in constant
time: the routing table decides which server answers production traffic under a signed version's
label, and the counters and backend list are the map an attacker would want. Open without a token:
``/_conveyor/health`` (liveness for load balancers and Kubernetes probes), ``/_conveyor/openapi.json``
(the API's static description) and ``/metrics`` (Prometheus scrapes without credentials; it shows
counters per backend name and version, never a URL). A router without an admin token refuses every
protected call: the CLI always gives it one (``cli/router.py``).

Backend URLs leave the router without credentials (``conveyor.redaction``); a table sent back with a
backend's URL as it was shown keeps the credentials the router holds for that backend, so a
read-modify-write (``conveyor rollout down``) never strips them.
"""

from __future__ import annotations

import hmac
from typing import TYPE_CHECKING, Any

from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest
from pydantic import ValidationError

from conveyor.errors import InvalidInput
from conveyor.redaction import has_credentials, without_credentials
from conveyor.router.asgi import Receive, Send, TooLarge, read_body, send_json
from conveyor.router.routing import RouteTable

if TYPE_CHECKING:
    from conveyor.router.app import Router

ADMIN_PREFIX = "/_conveyor/"
ADMIN_METHODS = {  # what each admin path allows, for 405's Allow header (RFC 9110)
    "/_conveyor/health": "GET",
    "/_conveyor/stats": "GET",
    "/_conveyor/routes": "GET, PUT",
    "/_conveyor/openapi.json": "GET",
    "/metrics": "GET",
}
OPEN_PATHS = frozenset({"/_conveyor/health", "/_conveyor/openapi.json", "/metrics"})  # probes, scrapes, the spec
CHALLENGE = [(b"www-authenticate", b'Bearer realm="conveyor-router"')]


def is_admin_path(path: str) -> bool:
    return path.startswith(ADMIN_PREFIX) or path == "/metrics"


def authorized(headers: list[tuple[bytes, bytes]], token: str | None) -> bool:
    """Whether the request carries ``Bearer <token>`` (constant time; no token configured: nobody is)."""
    if not token:
        return False
    given = next((value for key, value in headers if key == b"authorization"), b"")
    scheme, _, credential = given.partition(b" ")
    return scheme.lower() == b"bearer" and hmac.compare_digest(credential.strip(), token.encode())


async def serve_admin(router: Router, scope: dict[str, Any], receive: Receive, send: Send) -> None:
    path, method = scope["path"], scope["method"]
    if path not in OPEN_PATHS and not authorized(scope["headers"], router.options.admin_token):
        message = "the router's admin token is required (Authorization: Bearer ...; CONVEYOR_ROUTER_TOKEN)"
        await send_json(send, 401, {"error": message}, CHALLENGE)
        return
    if path == "/metrics" and method == "GET":
        body = generate_latest(router.registry)
        headers = [(b"content-type", CONTENT_TYPE_LATEST.encode())]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})
    elif path == "/_conveyor/health" and method == "GET":
        await send_json(send, 200, {"status": "ok", "instance": router.stats.instance})
    elif path == "/_conveyor/stats" and method == "GET":
        await send_json(send, 200, router.stats.snapshot())
    elif path == "/_conveyor/routes" and method == "GET":
        await send_json(send, 200, describe(router))
    elif path == "/_conveyor/routes" and method == "PUT":
        await _put_routes(router, receive, send)
    elif path == "/_conveyor/openapi.json" and method == "GET":
        from conveyor.router.admin_openapi import admin_openapi

        await send_json(send, 200, admin_openapi())
    elif path in ADMIN_METHODS:
        allow = ADMIN_METHODS[path].encode()
        await send_json(send, 405, {"error": f"method {method} not allowed on {path}"}, [(b"allow", allow)])
    else:
        await send_json(send, 404, {"error": f"no route {path}"})


def describe(router: Router) -> dict[str, Any]:
    """The table in force with each backend's health, its URLs without credentials."""
    table = router.table.model_dump()
    for backend in table["backends"]:
        health = router.health.backends.get(backend["name"])
        backend["url"] = without_credentials(backend["url"])
        backend["healthy"] = health.healthy if health else True
        backend["last_error"] = health.last_error if health else None
    table["instance"] = router.stats.instance
    return table


def keeping_credentials(new: RouteTable, current: RouteTable) -> RouteTable:
    """``new`` where a backend's URL is one the router showed without credentials: with them again."""
    held = {without_credentials(b.url): b.url for b in current.backends if has_credentials(b.url)}
    if not held or not any(b.url in held for b in new.backends):
        return new
    backends = [b.model_copy(update={"url": held.get(b.url, b.url)}) for b in new.backends]
    return new.model_copy(update={"backends": backends})


async def _put_routes(router: Router, receive: Receive, send: Send) -> None:
    try:
        body = await read_body(receive, 1_000_000)
        table = RouteTable.model_validate_json(body, strict=True)
    except TooLarge:
        await send_json(send, 413, {"error": "routing table over 1 MB"})
        return
    except ConnectionResetError:
        return
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'body'}: {e['msg']}" for e in exc.errors(include_url=False)
        )
        await send_json(send, 422, {"error": f"invalid routing table: {problems}"})
        return
    try:
        await router.replace_table(keeping_credentials(table, router.table))
    except InvalidInput as exc:  # the external data plane refused it: the table in force stays
        await send_json(send, 422, {"error": exc.message})
        return
    await send_json(send, 200, describe(router))
