"""``conveyor router``'s process: the router app on uvicorn (or behind nginx, ``--data-plane nginx``) until a signal.

Kept apart from ``router/app.py`` (the ASGI app and its hot path): this is the process around it.
"""

from __future__ import annotations

import contextlib
import logging
from typing import TYPE_CHECKING

from conveyor.router.app import Router, RouterOptions, save_table
from conveyor.router.routing import RouteTable

if TYPE_CHECKING:
    from conveyor.router.settings import RouterSettings
    from conveyor.tls import ServerTls


def run_router(
    table: RouteTable, options: RouterOptions, settings: RouterSettings, tls: ServerTls | None = None
) -> None:
    """Serve until SIGTERM/SIGINT; queued connections and in-flight requests are answered first (http_server.py)."""
    from conveyor.containers import free_port
    from conveyor.http_server import run, server_config

    log_level = settings.log_level
    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    host, port, plane = settings.host, settings.port, None
    if settings.data_plane == "nginx":  # nginx takes the clients' port; this process listens on loopback
        from conveyor.router.nginx import nginx_plane

        host, port = "127.0.0.1", free_port()
        plane = nginx_plane(settings, options, port, tls)
        tls = None  # nginx terminates TLS
    app = Router(table, options, plane)
    if options.state_file is not None:
        save_table(table, options.state_file)
    config = server_config(
        app,
        host,
        port,
        settings,
        loop="uvloop",
        lifespan="on",
        log_level=log_level,
        access_log=False,
        timeout_graceful_shutdown=30,
        timeout_keep_alive=30,
        date_header=False,
        **(tls or {}),
    )
    with contextlib.suppress(KeyboardInterrupt):
        run(config)
