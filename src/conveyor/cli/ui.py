"""``conveyor ui``: serve the dashboard (registry, rollouts, pipeline runs) on one port."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from conveyor.cli.output import handle_errors, stdout
from conveyor.cli.settings_options import given_on_command_line, with_settings
from conveyor.errors import InvalidInput
from conveyor.ports import check_port_free
from conveyor.ui.settings import DashboardSettings

PROJECT_FILE = Path("conveyor.yaml")


@with_settings(DashboardSettings)
def ui(context: typer.Context, **options: Any) -> None:
    """Serve the dashboard: models and versions, live rollouts with their buttons, pipeline runs.

    Reading is open unless --require-login. When the registry keeps tokens, buttons need a login
    with a write token (`conveyor registry token create NAME --scope write`). Set
    CONVEYOR_UI_SECRET to keep sessions across restarts. Every option is also a variable (shown)
    and a key of conveyor.yaml's ui: section (the command line wins, then the variable, then
    conveyor.yaml).
    """
    import uvicorn

    from conveyor.registry.config import open_registry
    from conveyor.ui.app import create_app
    from conveyor.ui.traffic_pages import TrafficSettings

    with handle_errors():
        settings = DashboardSettings.load(given_on_command_line(context, options), PROJECT_FILE)
        host, port = settings.host, settings.port
        check_port_free(host, port)
        store = open_registry(settings.registry, settings.token)
        tokens = getattr(store, "tokens", None)  # a remote registry's tokens live on its server
        if host not in ("127.0.0.1", "localhost", "::1") and not (tokens is not None and tokens.list()):
            raise InvalidInput(
                f"refusing to serve the dashboard on {host}: this registry keeps no tokens here, so its buttons "
                "would be open to the network; create one (conveyor registry token create NAME --scope write) "
                "or bind 127.0.0.1 (or use conveyor registry serve --ui)"
            )
        traffic = TrafficSettings(settings.payload_logs, settings.drift_window)
        app = create_app(
            store,
            tokens=tokens,
            require_login=settings.require_login,
            traffic=traffic,
            idle_minutes=settings.session_idle_minutes,
        )
    stdout.print(f"dashboard: http://{host}:{port}/", highlight=False)
    uvicorn.run(app, host=host, port=port, log_level=settings.log_level, server_header=False)
