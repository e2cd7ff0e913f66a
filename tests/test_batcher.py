"""The batcher on its own: grouping, order, waits, errors, parallel batches, shutdown."""

from __future__ import annotations

import asyncio

import pytest

from conveyor.serving.batching import Batcher


def test_batcher_groups_concurrent_jobs_and_keeps_order() -> None:
    seen: list[int] = []

    def handler(items: list[int]) -> list[int]:
        seen.append(len(items))
        return [i * 10 for i in items]

    async def main() -> list[list[int]]:
        batcher: Batcher[int, int] = Batcher(handler, max_batch_size=8, max_wait=0.05)
        batcher.start()
        try:
            return await asyncio.gather(*(batcher.submit([i, i + 100]) for i in range(8)))
        finally:
            await batcher.close()

    results = asyncio.run(main())
    assert results == [[i * 10, (i + 100) * 10] for i in range(8)]
    assert sum(seen) == 16
    assert max(seen) <= 8
    assert len(seen) < 8, "jobs submitted together were not batched"


@pytest.mark.parametrize(("max_wait", "waits"), [(0.0, False), (2.0, True)])
def test_a_lone_request_waits_only_when_a_batch_wait_is_set(max_wait: float, waits: bool) -> None:
    async def main() -> float:
        batcher: Batcher[int, int] = Batcher(lambda items: items, max_batch_size=64, max_wait=max_wait)
        batcher.start()
        loop = asyncio.get_running_loop()
        started = loop.time()
        await batcher.submit([1])
        elapsed = loop.time() - started
        await batcher.close()
        return elapsed

    elapsed = asyncio.run(main())
    assert (elapsed >= 2.0) if waits else (elapsed < 1.0)


def test_batcher_propagates_handler_errors_to_every_job() -> None:
    def handler(items: list[int]) -> list[int]:
        raise RuntimeError("boom")

    async def main() -> list[BaseException]:
        batcher: Batcher[int, int] = Batcher(handler, max_batch_size=8)
        batcher.start()
        results = await asyncio.gather(*(batcher.submit([i]) for i in range(3)), return_exceptions=True)
        await batcher.close()
        return results

    assert all(isinstance(r, RuntimeError) for r in asyncio.run(main()))


def test_a_job_that_fails_its_batch_fails_alone_and_its_batch_mates_are_answered() -> None:
    batches: list[list[int]] = []

    def handler(items: list[int]) -> list[int]:
        batches.append(items)
        if -1 in items:
            raise ValueError("the model refuses -1")
        return [i * 10 for i in items]

    async def main() -> list[list[int] | BaseException]:
        batcher: Batcher[int, int] = Batcher(handler, max_batch_size=64, max_wait=0.05)
        batcher.start()
        jobs = [[i, i + 100] for i in range(5)] + [[7, -1]] + [[i] for i in range(5, 9)]
        results = await asyncio.gather(*(batcher.submit(job) for job in jobs), return_exceptions=True)
        await batcher.close()
        return results

    results = asyncio.run(main())
    assert isinstance(results[5], ValueError) and "refuses -1" in str(results[5])
    good = [r for i, r in enumerate(results) if i != 5]
    assert good == [[i * 10, (i + 100) * 10] for i in range(5)] + [[i * 10] for i in range(5, 9)]
    assert len(batches[0]) == 16, "the jobs were not batched together first"
    assert [7, -1] in batches[1:], "the failing job was not run by itself"


def test_parallel_batches_compute_at_the_same_time() -> None:
    import threading

    barrier = threading.Barrier(2, timeout=5)  # passes only if two batches run at once

    def handler(items: list[int]) -> list[int]:
        barrier.wait()
        return items

    async def main() -> list[list[int]]:
        batcher: Batcher[int, int] = Batcher(handler, max_batch_size=1, parallel_batches=2)
        batcher.start()
        try:
            return await asyncio.gather(batcher.submit([1]), batcher.submit([2]))
        finally:
            await batcher.close()

    assert asyncio.run(main()) == [[1], [2]]


def test_batcher_close_finishes_the_running_batch_and_refuses_queued_jobs() -> None:
    import threading

    from conveyor.errors import NotReady

    release = threading.Event()

    def handler(items: list[int]) -> list[int]:
        release.wait(5)
        return items

    async def main() -> tuple[object, object, object]:
        batcher: Batcher[int, int] = Batcher(handler, max_batch_size=1)
        batcher.start()
        running = asyncio.ensure_future(batcher.submit([1]))
        queued = asyncio.ensure_future(batcher.submit([2]))
        await asyncio.sleep(0.05)  # [1] computes, [2] waits for the slot
        closing = asyncio.ensure_future(batcher.close())
        await asyncio.sleep(0.05)
        release.set()
        await closing
        late = await asyncio.gather(batcher.submit([3]), return_exceptions=True)
        return await running, (await asyncio.gather(queued, return_exceptions=True))[0], late[0]

    finished, refused, late = asyncio.run(main())
    assert finished == [1]
    assert isinstance(refused, NotReady) and isinstance(late, NotReady)
