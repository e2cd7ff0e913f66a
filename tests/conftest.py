"""Shared fixtures: test models on disk and real ``conveyor serve`` processes on 127.0.0.1."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from conveyor.containers import free_port
from tests import models
from tests.waiting import wait_for

REPO = Path(__file__).resolve().parent.parent

# Four test workers share two cores: a library that starts one thread per core and spins while it
# waits (OpenMP under PyTorch, OpenBLAS under scikit-learn and NumPy) burns the CPU the other
# workers' servers need. One thread each, for this process and every process the tests start.
for _threads in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_threads, "1")
pytest_plugins = ["tests.registry_fixtures", "tests.rollout_fixtures"]
if os.environ.get("CONVEYOR_SUITE_CPU"):  # each test's CPU, for python -m benchmarks.suite
    pytest_plugins.append("benchmarks.suite.cpu_plugin")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The slow tests first, the longest first (``slow(seconds=N)``, a minute unless said).

    pytest-xdist deals the first quarter of the tests round robin, then the rest on demand: a
    ten-minute test collected half-way through started when half the suite had run, and the whole
    run waited for it alone at the end.  Longest first, each long pole starts at once on its own
    worker and the short tests fill in around them (the order within a weight stays as collected).
    """

    def seconds(item: pytest.Item) -> float:
        slow = item.get_closest_marker("slow")
        return 0.0 if slow is None else float(slow.kwargs.get("seconds", 60))

    items.sort(key=seconds, reverse=True)


@pytest.fixture(scope="session", autouse=True)
def shared_wheelhouse(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """One wheelhouse for every image build of the run (all workers), as one user's machine has.

    The first build downloads the image's pinned wheels, later ones find them (conveyor build
    locks the folder). The user journeys strip CONVEYOR_* and start from an empty one.
    """
    run_folder = tmp_path_factory.getbasetemp()  # pytest-N, or pytest-N/popen-gwX under xdist
    folder = (run_folder.parent if os.environ.get("PYTEST_XDIST_WORKER") else run_folder) / "wheelhouse"
    folder.mkdir(exist_ok=True)
    previous = os.environ.get("CONVEYOR_WHEELHOUSE")
    os.environ["CONVEYOR_WHEELHOUSE"] = str(folder)
    yield folder
    if previous is None:
        os.environ.pop("CONVEYOR_WHEELHOUSE", None)
    else:
        os.environ["CONVEYOR_WHEELHOUSE"] = previous


@dataclass
class Server:
    """A ``conveyor serve`` subprocess."""

    process: subprocess.Popen[bytes]
    url: str
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20) -> int:
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode


def start_server(
    model: Path | str, *args: str, tmp_path: Path, wait_ready: bool = True, env: dict[str, str] | None = None
) -> Server:
    port = free_port()
    log_path = tmp_path / f"server-{port}.log"
    env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "conveyor.cli.main", "serve", str(model), "--port", str(port), *args],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=REPO,
        )
    server = Server(process, f"http://127.0.0.1:{port}", log_path)
    if wait_ready:
        wait_until_ready(server)
    return server


def wait_until_ready(server: Server, timeout: float = 60) -> None:
    def ready() -> bool:
        if server.process.poll() is not None:
            raise AssertionError(f"server exited with {server.process.returncode}:\n{server.log()}")
        return httpx.get(f"{server.url}/v2/health/ready", timeout=1).status_code == 200

    try:
        wait_for(ready, timeout=timeout, what=f"{server.url} to be ready")
    except AssertionError as exc:
        server.stop()
        raise AssertionError(f"{exc}\n{server.log()}") from None


@pytest.fixture
def podman_installed() -> None:
    """The test runs podman (tests.test_packaging.podman marks such tests)."""
    from tests.machine import tool

    tool("podman")


@pytest.fixture
def conveyor_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh CONVEYOR_HOME for the test: its own embedded registry, cache, runs and rollouts."""
    path = tmp_path / "home"
    path.mkdir()
    monkeypatch.setenv("CONVEYOR_HOME", str(path))
    for name in ("CONVEYOR_REGISTRY", "CONVEYOR_TOKEN", "CONVEYOR_BLOB_STORE", "GITHUB_ACTIONS"):
        monkeypatch.delenv(name, raising=False)
    return path


@pytest.fixture(scope="session")
def model_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("models")


@pytest.fixture(scope="session")
def vote_model(model_root: Path) -> Path:
    return models.model_dir(model_root / "vote", "votes", models.word_vote_model, max_length=16)


@pytest.fixture(scope="session")
def served_vote(vote_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    server = start_server(
        vote_model,
        "--max-body-bytes",
        "4096",
        "--max-items",
        "8",
        tmp_path=tmp_path_factory.mktemp("served-vote"),
    )
    yield server
    server.stop()


@pytest.fixture(scope="session")
def tiny_bert(model_root: Path) -> Path:
    return models.model_dir(model_root / "tiny-bert", "tiny-bert", models.tiny_bert_model)


@pytest.fixture(scope="session")
def no_mask(model_root: Path) -> Path:
    return models.model_dir(model_root / "no-mask", "no-mask", models.no_mask_model)


@pytest.fixture(scope="session")
def tabular(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """Real scikit-learn, XGBoost and LightGBM models, trained once per session (tests/tabular_models.py)."""
    from tests.tabular_models import train

    return train(tmp_path_factory.mktemp("tabular"))


@pytest.fixture(scope="session")
def deep(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """A PyTorch CNN on the bundled digits and a transformers classifier, built once per session
    (tests/deep_models.py)."""
    from tests.deep_models import build

    return build(tmp_path_factory.mktemp("deep"))


@pytest.fixture
def wide_console(monkeypatch: pytest.MonkeyPatch) -> None:
    """The CLI's consoles made again, 250 columns wide, for a test that reads a whole table.

    The consoles are made on first use and keep the width they found then: a console an earlier test
    in the same worker made where COLUMNS was set would otherwise decide this test's wrapping."""
    from conveyor.cli import output

    monkeypatch.setenv("COLUMNS", "250")
    monkeypatch.setattr(output.stdout, "_console", None)
    monkeypatch.setattr(output.stderr, "_console", None)
