"""The router's admin token for the local tools: made when none is given, kept beside its address file.

``conveyor router`` on loopback without ``--admin-token``/``CONVEYOR_ROUTER_TOKEN`` makes a random
token and writes it to ``$CONVEYOR_HOME/rollouts/<service>/router.token`` (mode 0600, readable by
this user only), next to ``router.json``; ``conveyor rollout``, the controller and the dashboard find
the router by that address and read its token from there when none is given. A token given by the
user is never written to disk: the tools then need it the same way (``CONVEYOR_ROUTER_TOKEN``).
"""

from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path

from conveyor.atomic import write_atomic
from conveyor.rollout.status import list_services, router_address, service_dir

TOKEN_ENV = "CONVEYOR_ROUTER_TOKEN"


def token_file(service: str) -> Path:
    return service_dir(service) / "router.token"


def local_token(service: str) -> str:
    """The service's stored token (kept across router restarts, like its routes), made on first use."""
    path = token_file(service)
    token = ""
    with contextlib.suppress(FileNotFoundError):
        token = path.read_text().strip()
    token = token or secrets.token_urlsafe(32)
    write_atomic(path, token)  # (re)written by a temporary file of mode 0600: never readable by others
    return token


def forget_local_token(service: str) -> None:
    """A token given by the user replaces a stored one: no stale secret stays on disk."""
    with contextlib.suppress(FileNotFoundError):
        token_file(service).unlink()


def token_for(url: str, given: str | None = None) -> str | None:
    """The admin token to call the router at ``url``: given, else the variable, else the local file."""
    if given or os.environ.get(TOKEN_ENV):
        return given or os.environ[TOKEN_ENV]
    wanted = url.rstrip("/")
    for service in list_services():
        address = router_address(service)
        if address is not None and address.rstrip("/") == wanted:
            with contextlib.suppress(FileNotFoundError):
                return token_file(service).read_text().strip() or None
    return None
