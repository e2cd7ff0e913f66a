"""``conveyor ui``: serve the dashboard (registry, rollouts, pipeline runs) on one port."""

from __future__ import annotations

from typing import Annotated

import typer

from conveyor.cli.models import RegistryOption, TokenOption
from conveyor.cli.output import handle_errors, stdout
from conveyor.errors import InvalidInput
from conveyor.ports import check_port_free


def ui(
    host: Annotated[str, typer.Option(help="Address to bind; 0.0.0.0 for every interface.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8600,
    registry: RegistryOption = None,
    token: TokenOption = None,
    require_login: Annotated[
        bool, typer.Option("--require-login", help="Reading needs a registry token too, not only acting.")
    ] = False,
    log_level: Annotated[str, typer.Option(help="debug, info, warning or error.")] = "warning",
    payload_logs: Annotated[
        str | None,
        typer.Option(
            metavar="DEST",
            envvar="CONVEYOR_PAYLOAD_LOGS",
            help="The payload log the servers or the router write (--log-payloads DEST): version and rollout "
            "pages then show their served traffic against the reference, drift and live quality.",
        ),
    ] = None,
    drift_window: Annotated[
        int, typer.Option(min=10, help="With --payload-logs: logged items per window, as `conveyor monitor`.")
    ] = 500,
) -> None:
    """Serve the dashboard: models and versions, live rollouts with their buttons, pipeline runs.

    Reading is open unless --require-login. When the registry keeps tokens, buttons need a login
    with a write token (`conveyor registry token create NAME --scope write`). Set
    CONVEYOR_UI_SECRET to keep sessions across restarts.
    """
    import uvicorn

    from conveyor.registry.config import open_registry
    from conveyor.ui.app import create_app
    from conveyor.ui.traffic_pages import TrafficSettings

    with handle_errors():
        check_port_free(host, port)
        store = open_registry(registry, token)
        tokens = getattr(store, "tokens", None)  # a remote registry's tokens live on its server
        if host not in ("127.0.0.1", "localhost", "::1") and not (tokens is not None and tokens.list()):
            raise InvalidInput(
                f"refusing to serve the dashboard on {host}: this registry keeps no tokens here, so its buttons "
                "would be open to the network; create one (conveyor registry token create NAME --scope write) "
                "or bind 127.0.0.1 (or use conveyor registry serve --ui)"
            )
        traffic = TrafficSettings(payload_logs, drift_window)
        app = create_app(store, tokens=tokens, require_login=require_login, traffic=traffic)
    stdout.print(f"dashboard: http://{host}:{port}/", highlight=False)
    uvicorn.run(app, host=host, port=port, log_level=log_level, server_header=False)
