"""The one rule for every control plane: bound beyond loopback without authentication, it refuses to start.

The router's admin API, the registry server and the dashboard can each change what production
serves. Reachable only from this machine (127.0.0.0/8, ::1, ``localhost``), running without
tokens is a developer's convenience; reachable from a network (``0.0.0.0``, ``::``, any other
address or name), it would hand that power to anyone who can connect. Each command calls
:func:`refuse_open_exposure` before it binds, so the three refuse in the same words; and
:func:`cleartext_warning` states the risk that remains when tokens cross a network unencrypted.
"""

from __future__ import annotations

import ipaddress

from conveyor.errors import InvalidInput


def is_loopback(host: str) -> bool:
    """True for addresses only this machine can reach; a host name other than ``localhost`` is not one."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def refuse_open_exposure(component: str, host: str, authenticated: bool, how_to_authenticate: str) -> None:
    """Raise when ``component`` would listen beyond loopback without authentication.

    ``how_to_authenticate`` is the component's own way to give it tokens (an option, a command);
    the message names the component, the address and both ways out.
    """
    if authenticated or is_loopback(host):
        return
    raise InvalidInput(
        f"refusing to start the {component} on {host} without authentication: anyone who can reach it "
        f"could use it; {how_to_authenticate}, or bind 127.0.0.1"
    )


SERVE_HTTPS = "--tls-cert/--tls-key, or a TLS-terminating proxy in front"


def cleartext_warning(component: str, host: str, tls: bool, how_to_serve_https: str = SERVE_HTTPS) -> str | None:
    """The line to print when ``component`` takes tokens over plain HTTP from beyond loopback.

    ``how_to_serve_https`` is the component's own way to HTTPS: its TLS options, or, for one that
    has none (the dashboard), what to put in front of it instead.
    """
    if tls or is_loopback(host):
        return None
    return (
        f"warning: the {component} on {host} speaks plain HTTP: its tokens cross the network readable; "
        f"serve HTTPS ({how_to_serve_https})"
    )
