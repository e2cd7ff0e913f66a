"""The one hash ``--log-hash FIELD`` writes into a payload log, kept apart so whoever compares the log
with something else (a reference profile's categories, the drift gauges) hashes the same way.

An HMAC-SHA256 keyed by ``$CONVEYOR_PAYLOAD_HASH_KEY`` when that is set, else a plain SHA-256, of
the value as text (``str(value)``: what a profile's categories are too), cut to 32 hex digits and
written as ``sha256:...``.  Equal values hash alike, so a hashed category keeps its frequency.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from typing import Any

HASH_KEY_ENV = "CONVEYOR_PAYLOAD_HASH_KEY"  # an HMAC key for --log-hash (else plain sha256)
PREFIX = "sha256:"


def hash_key() -> bytes:
    """This process's key (empty: a plain hash)."""
    return os.environ.get(HASH_KEY_ENV, "").encode()


def hash_value(value: Any, key: bytes) -> str:
    data = str(value).encode()
    digest = hmac.new(key, data, hashlib.sha256) if key else hashlib.sha256(data)
    return PREFIX + digest.hexdigest()[:32]


def is_hashed(value: Any) -> bool:
    return isinstance(value, str) and value.startswith(PREFIX) and len(value) == len(PREFIX) + 32
