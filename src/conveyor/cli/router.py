"""``conveyor router``: the traffic router in front of model-server backends.

Its options are the fields of :class:`~conveyor.router.settings.RouterSettings`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from conveyor.cli.output import fail, handle_errors, stderr
from conveyor.cli.settings_options import given_on_command_line, with_settings
from conveyor.extras import require
from conveyor.ports import check_port_free
from conveyor.router.settings import RouterSettings
from conveyor.tls import server_tls

PROJECT_FILE = Path("conveyor.yaml")


@with_settings(RouterSettings)
def router(context: typer.Context, **options: Any) -> None:
    """Route HTTP traffic between a stable and a canary model server.

    \b
    Weighted split (any percentage), a pin header (X-Conveyor-Version: canary|stable|VERSION),
    stickiness by a client header, mirroring with answer comparison, retry on a failed connection,
    ejection of backends failing health checks, per-backend Prometheus metrics on /metrics.
    Admin API (Authorization: Bearer <token>): GET|PUT /_conveyor/routes, GET /_conveyor/stats.
    `conveyor rollout` drives it. Without --admin-token, a router on 127.0.0.1 makes a token and
    stores it for the local tools (mode 0600, under CONVEYOR_HOME); beyond loopback it needs one.
    --log-payloads logs a sample of /predict traffic per backend version, in the layout
    `conveyor monitor` reads, and takes POST /feedback for it.
    --data-plane nginx: nginx carries the traffic (a proxy's cost), this process drives it.

    \b
    Every option is also a CONVEYOR_ROUTER_* variable and a key of conveyor.yaml's router:
    section (the command line wins, then the variable, then conveyor.yaml).

    \b
    conveyor router --service sentiment --port 8080 --stable http://127.0.0.1:5000
    """
    from pydantic import ValidationError

    with handle_errors():  # the router's upstream client, before its modules import it
        require("aiohttp", extra="router", for_="conveyor router")
    from conveyor.exposure import cleartext_warning, refuse_open_exposure
    from conveyor.rollout.router_token import forget_local_token, local_token, token_file
    from conveyor.rollout.status import routes_file, write_router_address
    from conveyor.router.app import RouterOptions, load_table
    from conveyor.router.process import run_router
    from conveyor.router.routing import BackendSpec, RouteTable

    with handle_errors():
        settings = RouterSettings.load(given_on_command_line(context, options), PROJECT_FILE)
        payload_log = settings.payload_log_config()  # before the port is taken: a bad one is one line
        host, port, service = settings.host, settings.port, settings.service
        stable, canary, canary_weight = settings.stable, settings.canary, settings.canary_weight
        sticky_header, mirror_percent = settings.sticky_header, settings.mirror_percent
        refuse_open_exposure(
            "router", host, bool(settings.admin_token), "give it a token (--admin-token or CONVEYOR_ROUTER_TOKEN)"
        )
        state = settings.state_file or routes_file(service)
        if settings.data_plane == "nginx":
            from conveyor.router.nginx import nginx_binary, stop_leftover

            nginx_binary()  # installed, or one line saying how to get it
            if (pid := stop_leftover(state.parent / "nginx")) is not None:
                stderr.print(f"stopped the nginx (pid {pid}) a previous router left serving", highlight=False)
        check_port_free(host, port)
        tls = server_tls(settings.tls_cert, settings.tls_key)
        try:
            if stable is not None:
                backends = [
                    BackendSpec(name="stable", url=stable, version=settings.stable_version, weight=100 - canary_weight)
                ]
                if canary is not None:
                    backends.append(
                        BackendSpec(name="canary", url=canary, version=settings.canary_version, weight=canary_weight)
                    )
                elif canary_weight:
                    raise fail("--canary-weight needs --canary")
                table = RouteTable(
                    backends=backends,
                    mirror_percent=mirror_percent if canary else 0.0,
                    mirror_to="canary" if canary and mirror_percent else None,
                    sticky_header=sticky_header,
                )
            elif state.exists():
                table = load_table(state)
                if sticky_header:
                    table = table.model_copy(update={"sticky_header": sticky_header.lower()})
                stderr.print(f"routes restored from {state}", highlight=False)
            else:
                if canary is not None:
                    raise fail("--canary needs --stable")
                table = RouteTable(sticky_header=sticky_header)
        except ValidationError as exc:
            raise fail("; ".join(e["msg"] for e in exc.errors(include_url=False))) from None
        router_options = RouterOptions(
            health_path=settings.health_path,
            health_interval=settings.health_interval,
            timeout=settings.timeout,
            max_body_bytes=settings.max_body_bytes,
            max_mirrors_in_flight=settings.max_mirrors_in_flight,
            retry=settings.retry,
            admin_token=settings.admin_token or local_token(service),
            state_file=state,
            service=service,
            payload_log=payload_log,
        )
        url_host = "127.0.0.1" if host in ("0.0.0.0", "::") else host
        scheme = "https" if tls else "http"
        write_router_address(service, f"{scheme}://{url_host}:{port}")
        if settings.admin_token:
            forget_local_token(service)
        else:
            stderr.print(f"admin token made for the local tools: {token_file(service)}", highlight=False)
        stderr.print(f"router for service {service!r} on {scheme}://{url_host}:{port}", highlight=False)
        if warning := cleartext_warning("router", host, bool(tls)):
            stderr.print(warning, highlight=False)
        run_router(table, router_options, settings, tls)
