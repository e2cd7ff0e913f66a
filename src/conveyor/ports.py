"""A port to listen on, checked before any work: one line when it is taken, not a server's log block.

``conveyor serve`` would otherwise download and load a model, start uvicorn and only then learn
that the port is in use (uvicorn prints its start-up log and exits 3, the code Conveyor keeps
for credentials).  Each command that listens asks here first; the check binds the address the
way uvicorn will (SO_REUSEADDR, so a port in TIME_WAIT is free) and lets it go at once.
"""

from __future__ import annotations

import errno
import socket

from conveyor.errors import PortInUse


def check_port_free(host: str, port: int, option: str = "--port") -> None:
    """Return if ``host:port`` can be bound now; PortInUse naming it (and the option to change) if not."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise PortInUse(
                    f"port {port} on {host} is already in use (another server is listening there): "
                    f"stop it, or choose another port with {option}"
                ) from None
            if exc.errno == errno.EADDRNOTAVAIL or isinstance(exc, socket.gaierror):
                raise PortInUse(f"cannot listen on {host}: this machine has no such address") from None
            if exc.errno == errno.EACCES:
                raise PortInUse(f"port {port} on {host} needs more privileges: choose one above 1023") from None
            raise PortInUse(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
