"""Dynamic batching of concurrent requests.

One loop per model takes jobs (a request's texts) from a queue and hands them
to a single inference thread.  Batches form while the previous batch computes:
when the runner is free the loop takes everything already queued (up to
``max_batch_size`` items) and starts at once.  So at low load nothing waits
for a batch to fill; under load batches grow by themselves.  An optional
``max_wait`` lets the loop wait a bounded time for more jobs before it starts
a batch; it is off by default because waiting for requests that may never
come only adds latency.  ``parallel_batches`` > 1 computes several batches at
once on their own threads (useful with one onnxruntime thread per batch on
machines with many cores).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Generic, TypeVar

Item = TypeVar("Item")
Result = TypeVar("Result")


@dataclass
class BatchStats:
    """What one batch looked like, for metrics."""

    size: int
    queue_waits: list[float]
    inference_seconds: float


@dataclass
class _Job(Generic[Item, Result]):
    items: Sequence[Item]
    future: asyncio.Future[list[Result]]
    enqueued: float = field(default_factory=time.monotonic)


class Batcher(Generic[Item, Result]):
    """Collects jobs into batches and runs ``handler`` on them in a worker thread.

    ``handler`` takes a flat list of items and returns one result per item, in order.
    """

    def __init__(
        self,
        handler: Callable[[list[Item]], Sequence[Result]],
        max_batch_size: int = 64,
        max_wait: float = 0.0,
        on_batch: Callable[[BatchStats], None] | None = None,
        parallel_batches: int = 1,
    ) -> None:
        if max_batch_size < 1:
            raise ValueError("max_batch_size must be at least 1")
        self._handler = handler
        self.max_batch_size = max_batch_size
        self.max_wait = max_wait
        self._on_batch = on_batch
        self._queue: asyncio.Queue[_Job[Item, Result]] = asyncio.Queue()
        self._carry: _Job[Item, Result] | None = None
        self.parallel_batches = parallel_batches
        self._slots = asyncio.Semaphore(parallel_batches)
        self._running: set[asyncio.Task[None]] = set()
        self._executor = ThreadPoolExecutor(max_workers=parallel_batches, thread_name_prefix="inference")
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._loop(), name="batcher")

    async def submit(self, items: Sequence[Item]) -> list[Result]:
        """Queue ``items`` (one request's worth) and wait for their results."""
        if self._task is None:
            raise RuntimeError("Batcher.start() was not called")
        future: asyncio.Future[list[Result]] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait(_Job(items, future))
        return await future

    async def run_alone(self, fn: Callable[[], Result]) -> Result:
        """Run ``fn`` on the inference thread, between batches (no batching)."""
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._running:  # batches already handed to the inference threads finish first
            await asyncio.gather(*self._running, return_exceptions=True)
        self._executor.shutdown(wait=True)

    async def _next_batch(self) -> list[_Job[Item, Result]]:
        first = self._carry or await self._queue.get()
        self._carry = None
        jobs = [first]
        size = len(first.items)
        deadline = time.monotonic() + self.max_wait
        while size < self.max_batch_size:
            try:
                job = self._queue.get_nowait()
            except asyncio.QueueEmpty:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                try:
                    job = await asyncio.wait_for(self._queue.get(), remaining)
                except TimeoutError:
                    break
            if size + len(job.items) > self.max_batch_size:
                self._carry = job  # starts the next batch
                break
            jobs.append(job)
            size += len(job.items)
        return jobs

    async def _loop(self) -> None:
        while True:
            await self._slots.acquire()
            try:
                jobs = await self._next_batch()
            except BaseException:
                self._slots.release()
                raise
            task = asyncio.get_running_loop().create_task(self._run(jobs))
            self._running.add(task)
            task.add_done_callback(self._running.discard)

    async def _run(self, jobs: list[_Job[Item, Result]]) -> None:
        try:
            jobs = [job for job in jobs if not job.future.cancelled()]  # clients that went away
            if not jobs:
                return
            items = [item for job in jobs for item in job.items]
            started = time.monotonic()
            try:
                results = await asyncio.get_running_loop().run_in_executor(self._executor, self._handler, items)
            except Exception as exc:
                for job in jobs:
                    if not job.future.done():
                        job.future.set_exception(exc)
                return
            elapsed = time.monotonic() - started
            offset = 0
            for job in jobs:
                count = len(job.items)
                if not job.future.done():
                    job.future.set_result(list(results[offset : offset + count]))
                offset += count
            if self._on_batch is not None:
                self._on_batch(BatchStats(len(items), [started - job.enqueued for job in jobs], elapsed))
        finally:
            self._slots.release()
