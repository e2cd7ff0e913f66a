"""Active and passive health of the router's backends: eject after failures, readmit after successes."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

import aiohttp

from conveyor.redaction import without_credentials
from conveyor.router.routing import RouteTable

log = logging.getLogger("conveyor.router")


@dataclass
class BackendHealth:
    url: str
    healthy: bool = True
    failures: int = 0
    successes: int = 0
    last_error: str | None = None
    changed_at: float = 0.0


class HealthTracker:
    """Health per backend name. A refused connection ejects at once; probes eject after ``unhealthy_after``."""

    def __init__(self, path: str, interval: float, unhealthy_after: int = 2, healthy_after: int = 2) -> None:
        self.path = path
        self.interval = interval
        self.unhealthy_after = unhealthy_after
        self.healthy_after = healthy_after
        self.backends: dict[str, BackendHealth] = {}
        self.on_change: Callable[[], None] | None = None  # a backend was ejected or readmitted

    def sync(self, table: RouteTable) -> None:
        """Track the table's backends; a backend whose URL changed starts healthy again."""
        current = {}
        for backend in table.backends:
            known = self.backends.get(backend.name)
            current[backend.name] = known if known and known.url == backend.url else BackendHealth(backend.url)
        self.backends = current

    def healthy_names(self) -> set[str]:
        return {name for name, health in self.backends.items() if health.healthy}

    def is_healthy(self, name: str) -> bool:
        health = self.backends.get(name)
        return health is None or health.healthy

    def failed(self, name: str, error: str, eject: bool = False) -> None:
        health = self.backends.get(name)
        if health is None:
            return
        health.failures += 1
        health.successes = 0
        health.last_error = error
        if health.healthy and (eject or health.failures >= self.unhealthy_after):
            health.healthy = False
            health.changed_at = time.time()
            log.warning("backend %s (%s) ejected: %s", name, without_credentials(health.url), error)
            if self.on_change is not None:
                self.on_change()

    def succeeded(self, name: str) -> None:
        health = self.backends.get(name)
        if health is None:
            return
        health.successes += 1
        health.failures = 0
        if not health.healthy and health.successes >= self.healthy_after:
            health.healthy = True
            health.last_error = None
            health.changed_at = time.time()
            log.warning("backend %s (%s) healthy again", name, without_credentials(health.url))
            if self.on_change is not None:
                self.on_change()

    async def probe_forever(self, session: aiohttp.ClientSession) -> None:
        timeout = aiohttp.ClientTimeout(total=max(1.0, self.interval))
        while True:
            for name, health in list(self.backends.items()):
                try:
                    async with session.get(health.url + self.path, timeout=timeout) as response:
                        await response.read()
                        if response.status == 200:
                            self.succeeded(name)
                        else:
                            self.failed(name, f"health check answered HTTP {response.status}")
                except (TimeoutError, aiohttp.ClientError) as exc:
                    self.failed(name, f"health check failed: {type(exc).__name__} {exc}".strip())
            await asyncio.sleep(self.interval)
