"""``conveyor ui``: serve the dashboard (registry, rollouts, pipeline runs) on one port."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from conveyor.cli.output import handle_errors, stderr, stdout
from conveyor.cli.settings_options import given_on_command_line, with_settings
from conveyor.exposure import cleartext_warning, refuse_open_exposure
from conveyor.ports import check_port_free
from conveyor.ui.settings import DashboardSettings

PROJECT_FILE = Path("conveyor.yaml")
# conveyor ui has no TLS options of its own: HTTPS comes from a proxy, or from the registry server's --ui
DASHBOARD_HTTPS = "a TLS-terminating proxy in front, or conveyor registry serve --ui --tls-cert/--tls-key"


@with_settings(DashboardSettings)
def ui(context: typer.Context, **options: Any) -> None:
    """Serve the dashboard: models and versions, live rollouts with their buttons, pipeline runs.

    Reading is open unless --require-login. When the registry keeps tokens, buttons need a login
    with a write token (`conveyor registry token create NAME --scope write`). Set
    CONVEYOR_UI_SECRET to keep sessions across restarts. Every option is also a variable (shown)
    and a key of conveyor.yaml's ui: section (the command line wins, then the variable, then
    conveyor.yaml).
    """
    from conveyor.http_server import run, server_config
    from conveyor.registry.config import open_registry
    from conveyor.ui.app import create_app
    from conveyor.ui.traffic_pages import TrafficSettings

    with handle_errors():
        settings = DashboardSettings.load(given_on_command_line(context, options), PROJECT_FILE)
        host, port = settings.host, settings.port
        store = open_registry(settings.registry, settings.token)
        tokens = getattr(store, "tokens", None)  # a remote registry's tokens live on its server
        refuse_open_exposure(
            "dashboard",
            host,
            bool(tokens is not None and tokens.list()),
            "create a token in its registry (conveyor registry token create NAME --scope write; "
            "a remote registry's dashboard: conveyor registry serve --ui)",
        )
        check_port_free(host, port)
        traffic = TrafficSettings(
            settings.payload_logs, settings.drift_window, settings.drift_since, settings.drift_window_time
        )
        app = create_app(
            store,
            tokens=tokens,
            require_login=settings.require_login,
            traffic=traffic,
            sessions=settings,
        )
    stdout.print(f"dashboard: http://{host}:{port}/", highlight=False)
    if warning := cleartext_warning("dashboard", host, tls=False, how_to_serve_https=DASHBOARD_HTTPS):
        stderr.print(warning, highlight=False)
    run(server_config(app, host, port, settings, log_level=settings.log_level))
