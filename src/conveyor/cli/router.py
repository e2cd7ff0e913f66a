"""``conveyor router``: the traffic router in front of model-server backends."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from conveyor.cli.output import fail, handle_errors, stderr
from conveyor.cli.payload_options import (
    LogDrop,
    LogHash,
    LogMaxRecordKib,
    LogPayloads,
    LogRotateMib,
    LogRotateSeconds,
    LogSample,
    payload_log_settings,
)
from conveyor.ports import check_port_free
from conveyor.tls import server_tls


def router(
    service: Annotated[
        str, typer.Option(help="Service name: the router records its address and routes under it for rollouts.")
    ] = "default",
    host: Annotated[str, typer.Option(help="Address to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port clients call.")] = 8080,
    stable: Annotated[str | None, typer.Option(help="URL of the stable backend, e.g. http://127.0.0.1:5000.")] = None,
    stable_version: Annotated[str, typer.Option(help="Version label of the stable backend.")] = "",
    canary: Annotated[str | None, typer.Option(help="URL of a canary backend.")] = None,
    canary_version: Annotated[str, typer.Option(help="Version label of the canary backend.")] = "",
    canary_weight: Annotated[float, typer.Option(min=0, max=100, help="Percent of traffic to the canary.")] = 0.0,
    mirror_percent: Annotated[
        float, typer.Option(min=0, max=100, help="Percent of stable's traffic copied to the canary and compared.")
    ] = 0.0,
    sticky_header: Annotated[
        str | None, typer.Option(help="Request header whose value keeps a client on one backend (e.g. X-User-Id).")
    ] = None,
    health_path: Annotated[str, typer.Option(help="Backend readiness path probed for ejection.")] = "/v2/health/ready",
    health_interval: Annotated[float, typer.Option(min=0.1, help="Seconds between health probes.")] = 1.0,
    timeout: Annotated[float, typer.Option(min=0.1, help="Seconds a backend may take to answer.")] = 60.0,
    retry: Annotated[
        bool, typer.Option(help="Retry once on another backend when a connection fails before any answer.")
    ] = True,
    admin_token: Annotated[
        str | None,
        typer.Option(
            envvar="CONVEYOR_ROUTER_TOKEN", help="Bearer token required to change routes.", show_default=False
        ),
    ] = None,
    state_file: Annotated[
        Path | None, typer.Option(help="Where routes persist across restarts [default: under CONVEYOR_HOME].")
    ] = None,
    tls_cert: Annotated[
        Path | None, typer.Option(help="PEM certificate: serve HTTPS (clients and admin calls verify it).")
    ] = None,
    tls_key: Annotated[Path | None, typer.Option(help="PEM private key of --tls-cert.")] = None,
    log_level: Annotated[str, typer.Option(help="debug, info, warning or error.")] = "info",
    log_payloads: LogPayloads = None,
    log_sample: LogSample = 0.1,
    log_drop: LogDrop = None,
    log_hash: LogHash = None,
    log_max_record_kib: LogMaxRecordKib = 64,
    log_rotate_mib: LogRotateMib = 16,
    log_rotate_seconds: LogRotateSeconds = 300.0,
) -> None:
    """Route HTTP traffic between a stable and a canary model server.

    \b
    Weighted split (any percentage), a pin header (X-Conveyor-Version: canary|stable|VERSION),
    stickiness by a client header, mirroring with answer comparison, retry on a failed connection,
    ejection of backends failing health checks, per-backend Prometheus metrics on /metrics.
    Admin API: GET|PUT /_conveyor/routes, GET /_conveyor/stats. `conveyor rollout` drives it.
    --log-payloads logs a sample of /predict traffic per backend version, in the layout
    `conveyor monitor` reads, and takes POST /feedback for it.

    \b
    conveyor router --service sentiment --port 8080 --stable http://127.0.0.1:5000
    """
    from pydantic import ValidationError

    from conveyor.rollout.status import routes_file, write_router_address
    from conveyor.router.app import RouterOptions, load_table, run_router
    from conveyor.router.routing import BackendSpec, RouteTable

    with handle_errors():
        check_port_free(host, port)
        tls = server_tls(tls_cert, tls_key)
        state = state_file or routes_file(service)
        try:
            if stable is not None:
                backends = [BackendSpec(name="stable", url=stable, version=stable_version, weight=100 - canary_weight)]
                if canary is not None:
                    backends.append(
                        BackendSpec(name="canary", url=canary, version=canary_version, weight=canary_weight)
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
        settings = payload_log_settings(  # before the port is taken: a bad one is one line
            log_payloads,
            sample=log_sample,
            drop=log_drop,
            hash=log_hash,
            max_record_kib=log_max_record_kib,
            rotate_mib=log_rotate_mib,
            rotate_seconds=log_rotate_seconds,
        )
        options = RouterOptions(
            health_path=health_path,
            health_interval=health_interval,
            timeout=timeout,
            retry=retry,
            admin_token=admin_token,
            state_file=state,
            service=service,
            payload_log=settings,
        )
        url_host = "127.0.0.1" if host in ("0.0.0.0", "::") else host
        scheme = "https" if tls else "http"
        write_router_address(service, f"{scheme}://{url_host}:{port}")
        stderr.print(f"router for service {service!r} on {scheme}://{url_host}:{port}", highlight=False)
        run_router(table, options, host, port, log_level, tls)
