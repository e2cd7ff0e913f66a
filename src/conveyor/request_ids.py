"""Request ids: the key a client, the router, a server's payload log and ``POST /feedback`` share.

A client's own ``X-Request-Id`` is kept when it is a sane token; otherwise one is made.  The
server and the router answer with it in the same header.
"""

from __future__ import annotations

import os

HEADER = b"x-request-id"


def client_request_id(value: bytes) -> str:
    """The client's ``X-Request-Id`` when it is a sane token (at most 128 visible ASCII characters)."""
    text = value.decode("latin-1").strip()
    return text if 0 < len(text) <= 128 and text.isascii() and text.isprintable() and " " not in text else ""


def new_request_id() -> str:
    return os.urandom(8).hex()
