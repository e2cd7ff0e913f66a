"""Waiting for a model server Conveyor started itself to become ready.

Shared by ``conveyor verify`` (the server or container under test) and the
rollout controller (a new version's backend): poll the v2 readiness route,
give up early when the process is gone, and show its last log lines either way.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import httpx

from conveyor.errors import ConveyorError

READY_PATH = "/v2/health/ready"


def readiness(url: str, timeout: float = 2.0) -> str | None:
    """None when ``url`` answers ready, else why not (``HTTP 503``, ``ConnectError``...)."""
    try:
        response = httpx.get(f"{url}{READY_PATH}", timeout=timeout)
    except httpx.HTTPError as exc:
        return type(exc).__name__
    return None if response.status_code == 200 else f"HTTP {response.status_code}"


def wait_until_ready(url: str, alive: Callable[[], bool], logs: Callable[[], str], timeout: float, what: str) -> None:
    """Poll until ready; ``ConveyorError`` naming ``what`` when it exits first or time runs out."""
    deadline = time.monotonic() + timeout
    last = "no answer"
    while time.monotonic() < deadline:
        if not alive():
            raise ConveyorError(f"{what} exited before it was ready:\n{logs()}")
        reason = readiness(url)
        if reason is None:
            return
        last = reason
        time.sleep(0.2)
    raise ConveyorError(f"{what} was not ready after {timeout:g}s ({last}):\n{logs()}")
