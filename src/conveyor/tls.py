"""TLS where credentials cross machines: the registry server's and the router's certificates, and
how Conveyor's clients verify them.

Servers take ``--tls-cert`` and ``--tls-key`` (PEM files, handed to uvicorn). Clients verify
certificates by default against the system's trust store; a private CA goes in
``CONVEYOR_CA_BUNDLE`` (or the ``--ca-bundle`` option where a command has one). There is no switch
to turn verification off: a token sent to an unverified server is a token given away.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, TypedDict

from conveyor.errors import InvalidInput

if TYPE_CHECKING:
    import ssl

CA_BUNDLE_ENV = "CONVEYOR_CA_BUNDLE"


def client_verify(ca_bundle: str | Path | None = None) -> ssl.SSLContext | bool:
    """What to pass as httpx's ``verify``: the system's trust store, or the CA bundle given."""
    import ssl

    path = ca_bundle or os.environ.get(CA_BUNDLE_ENV) or None
    if path is None:
        return True
    if not Path(path).is_file():
        raise InvalidInput(f"CA bundle {path} does not exist (from {CA_BUNDLE_ENV} or --ca-bundle)")
    return ssl.create_default_context(cafile=str(path))


class ServerTls(TypedDict, total=False):
    """uvicorn's keyword arguments for HTTPS (none: plain HTTP)."""

    ssl_certfile: str
    ssl_keyfile: str


def server_tls(cert: Path | None, key: Path | None) -> ServerTls:
    """uvicorn's TLS settings from ``--tls-cert``/``--tls-key``: both or neither, both readable."""
    import ssl

    if cert is None and key is None:
        return {}
    if cert is None or key is None:
        raise InvalidInput("--tls-cert and --tls-key go together: give both PEM files")
    for option, path in (("--tls-cert", cert), ("--tls-key", key)):
        if not path.is_file():
            raise InvalidInput(f"{option} {path} does not exist")
    try:
        ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(str(cert), str(key))
    except (ssl.SSLError, ValueError) as exc:
        raise InvalidInput(f"cannot use {cert} with {key}: {exc}") from None
    return {"ssl_certfile": str(cert), "ssl_keyfile": str(key)}


def transport_hint(error: Exception) -> str:
    """What to do about a failed connection, where we can tell (a certificate we could not verify)."""
    text = str(error)
    if "CERTIFICATE_VERIFY_FAILED" in text or "certificate verify failed" in text:
        return f" (the server's certificate is not trusted: set {CA_BUNDLE_ENV} to the CA that signed it)"
    if "WRONG_VERSION_NUMBER" in text or "record layer failure" in text:
        return " (is the server speaking plain HTTP? use http://, or give it --tls-cert/--tls-key)"
    return ""
