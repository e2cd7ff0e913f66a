"""Real routers, backends and controllers on 127.0.0.1 for the rollout tests."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from tests import waiting
from tests.conftest import REPO, Server, free_port


def env() -> dict[str, str]:
    return {**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONPATH": str(REPO)}


def wait_for(predicate, timeout: float = 30, what: str = "condition"):  # type: ignore[no-untyped-def]
    """The suite's one wait (tests.waiting), with the positional arguments these tests use."""
    return waiting.wait_for(predicate, timeout=timeout, what=what, interval=0.1)


Proc = Server  # a router or backend subprocess: the same handle as a model server


def spawn(args: list[str], log_path: Path, url: str, ready_path: str) -> Proc:
    with open(log_path, "wb") as log:
        process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, env=env(), cwd=REPO)
    proc = Server(process, url, log_path)

    def up() -> bool:
        if process.poll() is not None:
            raise AssertionError(f"{args} exited:\n{proc.log()}")
        try:
            return httpx.get(url + ready_path, timeout=1).status_code == 200
        except httpx.TransportError:
            return False

    wait_for(up, 60, f"{args[3:5]} to be ready")
    return proc


def start_router(tmp: Path, service: str = "svc", *extra: str) -> Proc:
    port = free_port()
    args = [sys.executable, "-m", "conveyor", "router", "--service", service, "--port", str(port)]
    args += ["--health-interval", "0.2", "--log-level", "warning", *extra]
    return spawn(args, tmp / f"router-{port}.log", f"http://127.0.0.1:{port}", "/_conveyor/health")


def admin(url: str) -> dict[str, str]:
    """The Authorization header for the router at ``url``: the token it stored for the local tools."""
    from conveyor.rollout.router_token import token_for

    token = token_for(url)
    assert token, f"no admin token stored for the router at {url}"
    return {"Authorization": f"Bearer {token}"}


def start_fake(tmp: Path, mode: str) -> Proc:
    port = free_port()
    args = [sys.executable, "-m", "tests.rollout_backend", mode, str(port)]
    return spawn(args, tmp / f"fake-{mode}-{port}.log", f"http://127.0.0.1:{port}", "/v2/health/ready")


def fake_command(mode: str) -> str:
    return f"{sys.executable} -m tests.rollout_backend {mode} {{port}}"


@dataclass
class Load:
    """Clients calling the router all along; counts every answer a client saw."""

    url: str
    clients: int = 2
    pause: float = 0.03
    texts: list[str] = field(default_factory=lambda: ["good great day", "bad awful food", "good day"])
    rows: list[dict] | None = None  # records of a tabular model instead: any 200 is a right answer
    seen: Counter[str] = field(default_factory=Counter)
    by_backend: Counter[str] = field(default_factory=Counter)
    failed_by_backend: Counter[str] = field(default_factory=Counter)  # non-200 answers, by who gave them
    wrong: int = 0
    join_timeout: float = 15  # seconds each client may take to finish its last request

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._run, args=(i,), daemon=True) for i in range(self.clients)]

    def _run(self, index: int) -> None:
        from tests.models import expected_positive

        with httpx.Client(timeout=10) as client:
            n = 0
            while not self._stop.is_set():
                inputs = self.rows or self.texts
                item = inputs[(n + index) % len(inputs)]
                n += 1
                try:
                    response = client.post(self.url + "/predict", json=[item])
                    key = str(response.status_code)
                    backend = response.headers.get("x-conveyor-backend", "?")
                    ok = response.status_code == 200 and (
                        self.rows is not None or response.json() == {"positive": expected_positive(item)}
                    )
                except httpx.HTTPError as exc:
                    key, backend, ok = type(exc).__name__, "?", False
                with self._lock:
                    self.seen[key] += 1
                    self.by_backend[backend] += 1
                    if key != "200":
                        self.failed_by_backend[backend] += 1
                    self.wrong += 0 if ok else 1
                time.sleep(self.pause)

    def __enter__(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(self.join_timeout)

    @property
    def total(self) -> int:
        with self._lock:
            return sum(self.seen.values())

    def answered(self, at_least: int, timeout: float = 30) -> None:
        """Wait until the clients have seen `at_least` answers in all (a wait that times out fails)."""
        wait_for(lambda: self.total >= at_least, timeout, f"{at_least} answers through the router")

    @property
    def errors(self) -> int:
        return sum(n for key, n in self.seen.items() if key != "200")


def status_of(home: Path, service: str = "svc") -> dict:
    return json.loads((home / "rollouts" / service / "status.json").read_text())


@pytest.fixture
def rollout_home(conveyor_home: Path) -> Path:
    return conveyor_home


@pytest.fixture
def router(rollout_home: Path, tmp_path: Path) -> Iterator[Proc]:
    proc = start_router(tmp_path)
    yield proc
    proc.stop()
    kill_backends(rollout_home)


def kill_backends(home: Path) -> None:
    """Stop every backend a controller started in this test (they run detached by design)."""
    for status_file in (home / "rollouts").glob("*/status.json"):
        for history in [status_file, *status_file.parent.glob("history/*.json")]:
            data = json.loads(history.read_text())
            for role in ("stable", "canary"):
                pid = data[role].get("pid")
                if pid:
                    with contextlib.suppress(ProcessLookupError, PermissionError):
                        os.killpg(pid, signal.SIGKILL)
