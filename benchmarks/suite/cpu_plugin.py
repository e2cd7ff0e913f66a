"""Where the test suite's CPU goes: a pytest plugin that writes each test's CPU seconds.

    CONVEYOR_SUITE_CPU=/tmp/suite-now make test      (tests/conftest.py loads it when that is set)

The suite is CPU-bound on a 2-core machine (four workers, hundreds of servers, image builds), so
its wall time follows its CPU time, and wall times of single tests say little: a test waits for
the CPU its neighbours use. Each test's own CPU does not: this plugin records, per test, the
worker's CPU and the CPU of the processes the test started and reaped (servers, CLI calls,
pipeline steps, builds), setup and teardown included, one JSON line per test in
``$CONVEYOR_SUITE_CPU/<worker>.jsonl``, and the whole machine's busy CPU over the run in
``machine.json``. ``python -m benchmarks.suite BEFORE AFTER`` compares two such runs.

Session fixtures are counted in the first test that asks for them, and processes that are not
the test's children (containers under conmon) only in ``machine.json``.
"""

from __future__ import annotations

import json
import os
import resource
import time
from collections.abc import Generator
from pathlib import Path

import pytest

WORKER = os.environ.get("PYTEST_XDIST_WORKER", "main")


def _folder() -> Path | None:
    value = os.environ.get("CONVEYOR_SUITE_CPU")
    return Path(value) if value else None


def _cpu() -> tuple[float, float]:
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime, children.ru_utime + children.ru_stime


def _machine_busy_seconds() -> float:
    """Every core's non-idle time since boot (/proc/stat, in clock ticks)."""
    fields = [int(value) for value in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return (sum(fields) - idle) / os.sysconf("SC_CLK_TCK")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Generator[None, None, None]:
    folder = _folder()
    started, (own, children) = time.monotonic(), _cpu()
    yield
    if folder is None:
        return
    ended, (own_after, children_after) = time.monotonic(), _cpu()
    record = {"id": item.nodeid, "wall": ended - started, "own": own_after - own, "children": children_after - children}
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / f"{WORKER}.jsonl", "a") as out:
        out.write(json.dumps(record) + "\n")


def pytest_sessionstart(session: pytest.Session) -> None:
    if WORKER == "main":
        session.config.stash[_START] = (time.monotonic(), _machine_busy_seconds())


def pytest_sessionfinish(session: pytest.Session) -> None:
    folder = _folder()
    if WORKER != "main" or folder is None or _START not in session.config.stash:
        return
    wall, busy = session.config.stash[_START]
    folder.mkdir(parents=True, exist_ok=True)
    result = {"wall": time.monotonic() - wall, "machine_busy_cpu": _machine_busy_seconds() - busy}
    (folder / "machine.json").write_text(json.dumps(result))


_START = pytest.StashKey[tuple[float, float]]()
