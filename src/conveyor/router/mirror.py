"""Mirroring: a copy of some of stable's traffic sent to the canary, its answer compared, never returned.

The copy runs as its own task after the client has its answer, bounded in number
(``max_in_flight``: beyond it a copy is dropped and counted), so a slow canary never slows
stable's clients.  Agreement is the same labels, or values within the table's tolerance; a generative
version's answers are kept in pairs (stable's, the canary's) for the analysis to compare by meaning.
"""

from __future__ import annotations

import asyncio
import random
import time

import aiohttp

from conveyor.router.generations import answer_text, is_generation
from conveyor.router.health import HealthTracker
from conveyor.router.predictions import Predictions, agree, read_predictions
from conveyor.router.routing import BackendSpec, RouteTable
from conveyor.router.stats import MIRROR, RouterStats


class Mirrors:
    """The copies in flight, and the comparisons they add to the router's statistics."""

    def __init__(
        self, stats: RouterStats, health: HealthTracker, max_in_flight: int, timeout: aiohttp.ClientTimeout
    ) -> None:
        self.stats, self.health = stats, health
        self.max_in_flight = max_in_flight
        self.timeout = timeout
        self.tasks: set[asyncio.Task[None]] = set()

    def maybe(
        self,
        session: aiohttp.ClientSession,
        table: RouteTable,
        request: tuple[str, str, str, bytes, list[tuple[str, str]]],
        predictions: Predictions | None,
        primary: bytes,
    ) -> None:
        """Copy a request (method, target, path, body, headers) to ``table.mirror_to`` at its percentage."""
        if random.random() * 100 >= table.mirror_percent or table.mirror_to is None:
            return
        mirror = table.backend(table.mirror_to)
        if mirror is None or not self.health.is_healthy(mirror.name):
            return
        if len(self.tasks) >= self.max_in_flight:
            self.stats.comparison(mirror.name, mirror.version).dropped += 1
            return
        task = asyncio.create_task(self._mirror(session, table, mirror, request, predictions, primary))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def drain(self, timeout: float) -> None:
        if self.tasks:
            await asyncio.wait(self.tasks, timeout=timeout)

    async def _mirror(
        self,
        session: aiohttp.ClientSession,
        table: RouteTable,
        mirror: BackendSpec,
        request: tuple[str, str, str, bytes, list[tuple[str, str]]],
        predictions: Predictions | None,
        primary: bytes,
    ) -> None:
        method, target, path, body, headers = request
        stats = self.stats.of(mirror.name, mirror.version, MIRROR)
        started = time.perf_counter()
        timeout = aiohttp.ClientTimeout(sock_read=self.timeout.total) if is_generation(path) else self.timeout
        try:
            async with session.request(
                method, mirror.url + target, data=body, headers=headers, timeout=timeout
            ) as response:
                data = await response.read()
                status = response.status
        except (TimeoutError, aiohttp.ClientError) as exc:
            stats.observe("connect_error" if isinstance(exc, aiohttp.ClientConnectorError) else "backend_error", 0.0)
            return
        mirrored = read_predictions(path, data) if status == 200 else None
        text = answer_text(data) if status == 200 and is_generation(path) else None
        stats.observe(str(status), time.perf_counter() - started, *answered(mirrored), answer=text)
        if status != 200:
            return
        comparison = self.stats.comparison(mirror.name, mirror.version)
        if text is not None:  # a generation: the two answers are kept, compared by meaning in the analysis
            comparison.pairs.append((answer_text(primary) or "", text))
            comparison.pairs_seen += 1
        elif predictions is None:
            same = data == primary
        else:
            tolerance = (table.value_tolerance, table.value_tolerance_abs)
            same = mirrored is not None and agree(mirrored, predictions, *tolerance)
        if same:
            comparison.agreed += 1
        else:
            comparison.disagreed += 1


def answered(predictions: Predictions | None) -> tuple[list[str] | None, list[float] | None]:
    """What the router's statistics keep of an answer: its labels, or a regressor's values."""
    return (predictions.labels, predictions.values) if predictions else (None, None)
