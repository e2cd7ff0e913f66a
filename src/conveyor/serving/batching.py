"""Dynamic batching of concurrent requests.

Jobs (one request's texts) wait in a queue; a batch starts whenever an
inference slot is free.  A job that arrives while a slot is free starts at
once, from the submitting coroutine itself: no batching task to wake, so at
low load nothing waits and the only hop is the one onto the inference thread.
Under load, jobs queue while a batch computes, and the moment it finishes the
next batch takes everything already queued (up to ``max_batch_size`` items),
so batches grow by themselves.  An optional ``max_wait`` lets a batch that is
not full wait a bounded time for more jobs; it is off by default because
waiting for requests that may never come only adds latency.
``parallel_batches`` > 1 computes several batches at once on their own
threads (useful with one onnxruntime thread per batch on machines with many
cores).

One request never fails another: when a batch of several jobs fails, each job
is computed again by itself on the same thread, so the job that caused the
failure gets its own error and the others their results.  (Whatever a request
can get wrong is checked before it is queued, so this is the rare path: a value
only the model itself refuses.)
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Generic, Protocol, TypeVar

from conveyor.errors import NotReady
from conveyor.tracing import BatchTrace, timed_phases

Item = TypeVar("Item")
Result = TypeVar("Result")
Row = TypeVar("Row", covariant=True)
Phases = list[tuple[str, int, int]]  # (name, start ns, end ns) of a batch's phases (conveyor.tracing)

log = logging.getLogger(__name__)


class Rows(Protocol[Row]):
    """What a handler returns: one result per item, sliced per job (a list, or a numpy array's rows)."""

    def __len__(self) -> int: ...

    def __getitem__(self, index: slice, /) -> Iterable[Row]: ...


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
    trace: BatchTrace | None = None  # filled in when the request is traced


class Batcher(Generic[Item, Result]):
    """Collects jobs into batches and runs ``handler`` on them in a worker thread.

    ``handler`` takes a flat list of items and returns one result per item, in
    order.  All methods are called from the event loop's thread.
    """

    def __init__(
        self,
        handler: Callable[[list[Item]], Rows[Result]],
        max_batch_size: int = 64,
        max_wait: float = 0.0,
        on_batch: Callable[[BatchStats], None] | None = None,
        parallel_batches: int = 1,
    ) -> None:
        if max_batch_size < 1:
            raise ValueError("max_batch_size must be at least 1")
        if parallel_batches < 1:
            raise ValueError("parallel_batches must be at least 1")
        self._handler = handler
        self.max_batch_size = max_batch_size
        self.max_wait = max_wait
        self.parallel_batches = parallel_batches
        self._on_batch = on_batch
        self._pending: deque[_Job[Item, Result]] = deque()
        self._pending_items = 0
        self._computing: set[asyncio.Future[tuple[list[list[Result] | Exception], Phases]]] = set()
        self._timer: asyncio.TimerHandle | None = None
        self._executor = ThreadPoolExecutor(max_workers=parallel_batches, thread_name_prefix="inference")
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closed = False

    def start(self) -> None:
        """Bind to the running event loop (call once, from it)."""
        self._loop = asyncio.get_running_loop()

    async def submit(self, items: Sequence[Item], trace: BatchTrace | None = None) -> list[Result]:
        """Queue ``items`` (one request's worth) and wait for their results (``trace``: how their batch went)."""
        if self._loop is None:
            raise RuntimeError("Batcher.start() was not called")
        if self._closed:
            raise NotReady("the server is shutting down")
        future: asyncio.Future[list[Result]] = self._loop.create_future()
        self._pending.append(_Job(items, future, trace=trace))
        self._pending_items += len(items)
        self._dispatch()
        return await future

    async def run_alone(self, fn: Callable[[], Result]) -> Result:
        """Run ``fn`` on the inference thread, between batches (no batching)."""
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn)

    async def close(self) -> None:
        """Let batches already computing finish; refuse the jobs that never started."""
        self._closed = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        while self._pending:
            job = self._pending.popleft()
            if not job.future.done():
                job.future.set_exception(NotReady("the server is shutting down"))
        self._pending_items = 0
        if self._computing:
            await asyncio.gather(*self._computing, return_exceptions=True)
        self._executor.shutdown(wait=True)

    # ---- scheduling (event loop thread only) -----------------------------------------------

    def _can_start(self) -> bool:
        """Jobs are waiting and an inference slot is free."""
        return bool(self._pending) and len(self._computing) < self.parallel_batches and not self._closed

    def _dispatch(self) -> None:
        """Start batches while a slot is free and jobs are waiting."""
        while self._can_start():
            if self.max_wait > 0 and self._pending_items < self.max_batch_size:
                due = self._pending[0].enqueued + self.max_wait
                if time.monotonic() < due:
                    self._wait_until(due)
                    return
            self._start(self._take_batch())

    def _wait_until(self, due: float) -> None:
        if self._timer is None:
            assert self._loop is not None
            delay = max(0.0, due - time.monotonic())
            self._timer = self._loop.call_later(delay, self._timer_fired)

    def _timer_fired(self) -> None:
        """The oldest job waited ``max_wait``: start what is there, full or not."""
        self._timer = None
        if self._can_start():
            self._start(self._take_batch())
        self._dispatch()

    def _take_batch(self) -> list[_Job[Item, Result]]:
        """The oldest jobs up to ``max_batch_size`` items (a larger job goes alone)."""
        jobs: list[_Job[Item, Result]] = []
        size = 0
        while self._pending:
            job = self._pending[0]
            if jobs and size + len(job.items) > self.max_batch_size:
                break
            self._pending.popleft()
            self._pending_items -= len(job.items)
            if job.future.cancelled():  # the client went away
                continue
            jobs.append(job)
            size += len(job.items)
        return jobs

    def _start(self, jobs: list[_Job[Item, Result]]) -> None:
        if not jobs:
            return
        assert self._loop is not None
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        size = sum(len(job.items) for job in jobs)
        started = time.monotonic()
        stamp = None
        timed = any(job.trace is not None for job in jobs)  # time the batch's phases for the traced requests
        if timed:
            stamp = time.time_ns()
        groups = [job.items for job in jobs]
        computing = self._loop.run_in_executor(self._executor, self._compute, groups, timed)
        self._computing.add(computing)
        computing.add_done_callback(lambda done: self._finish(jobs, size, started, done, stamp))

    def _compute(self, groups: list[Sequence[Item]], timed: bool) -> tuple[list[list[Result] | Exception], Phases]:
        """Each job's results (or its own error), computed as one batch; job by job if the batch fails."""
        items = [item for group in groups for item in group]
        try:
            rows, phases = timed_phases(self._handler, items) if timed else (self._handler(items), [])
        except Exception as error:
            if len(groups) == 1:
                return [error], []
            log.info("a batch of %d requests failed (%s): answering each by itself", len(groups), error)
            return [self._alone(group) for group in groups], []
        outcomes: list[list[Result] | Exception] = []
        offset = 0
        for group in groups:
            outcomes.append(list(rows[offset : offset + len(group)]))
            offset += len(group)
        return outcomes, phases

    def _alone(self, items: Sequence[Item]) -> list[Result] | Exception:
        try:
            rows = self._handler(list(items))
            return list(rows[0 : len(rows)])
        except Exception as error:
            return error

    def _finish(
        self,
        jobs: list[_Job[Item, Result]],
        size: int,
        started: float,
        done: asyncio.Future[tuple[list[list[Result] | Exception], Phases]],
        stamp: int | None,  # when the batch started, in ns since the epoch, if a job in it is traced
    ) -> None:
        self._computing.discard(done)
        elapsed = time.monotonic() - started
        error = done.exception()
        if error is not None:  # not the handler's (that is an outcome): the executor's, or cancellation
            for job in jobs:
                if not job.future.done():
                    job.future.set_exception(error)
        else:
            outcomes, phases = done.result()
            if stamp is not None:  # timed_phases ran the batch: traced jobs learn how it went
                finished = time.time_ns()
                for job in jobs:
                    if job.trace is not None:
                        job.trace.started, job.trace.finished, job.trace.size = stamp, finished, size
                        job.trace.phases = phases
            for job, outcome in zip(jobs, outcomes, strict=True):
                if job.future.done():
                    continue
                if isinstance(outcome, Exception):
                    job.future.set_exception(outcome)
                else:
                    job.future.set_result(outcome)
        self._dispatch()  # the next batch: everything that queued while this one computed
        if error is None and self._on_batch is not None:
            self._on_batch(BatchStats(size, [started - job.enqueued for job in jobs], elapsed))
