"""In-memory fakes of the rollout controller's edges: router, backends, clock (see test_rollout_controller.py)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from conveyor.rollout.analysis.metric import MeasurementError
from conveyor.rollout.analysis.thresholds import Thresholds
from conveyor.rollout.controller import CANARY, STABLE, Controller
from conveyor.rollout.status import Backend, RolloutStatus, StatusStore
from conveyor.router.routing import BackendSpec, RouteTable
from conveyor.router.stats import LIVE, MIRROR, RouterStats

INTERVAL = 10.0


class Crash(BaseException):
    """The controller process dying at an exact point (not an error it could handle)."""


@dataclass
class FakeClock:
    now: float = 1_000_000.0

    def time(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class FakeRouter:
    """The router's admin API in memory: a route table and the router's own statistics."""

    table: RouteTable = field(default_factory=RouteTable)
    stats_: RouterStats = field(default_factory=RouterStats)
    tables: list[RouteTable] = field(default_factory=list)
    unreachable: int = 0  # the next N calls fail as if the router were down
    crash_on_set: Callable[[RouteTable], bool] | None = None

    def _call(self) -> None:
        if self.unreachable:
            self.unreachable -= 1
            raise MeasurementError("the router at http://fake is unreachable: connection refused")

    def routes(self) -> RouteTable:
        self._call()
        return self.table.model_copy(deep=True)

    def set_routes(self, table: RouteTable) -> None:
        self._call()
        if self.crash_on_set is not None and self.crash_on_set(table):
            self.crash_on_set = None
            raise Crash("controller killed while changing the routes")
        self.table = table.model_copy(deep=True)
        self.tables.append(self.table)

    def stats(self) -> dict:
        self._call()
        return self.stats_.snapshot()

    def close(self) -> None:
        pass

    def weights(self) -> dict[str, float]:
        return {b.name: b.weight for b in self.table.backends}

    def serve(
        self,
        backend: str,
        version: str,
        requests: int,
        errors: int = 0,
        seconds: float = 0.004,
        label: str = "positive=true",
        kind: str = LIVE,
    ) -> None:
        traffic = self.stats_.of(backend, version, kind)
        for index in range(requests):
            traffic.observe("500" if index < errors else "200", seconds, [label])

    def compare(self, version: str, agreed: int, disagreed: int = 0) -> None:
        comparison = self.stats_.comparison(CANARY, version)
        comparison.agreed += agreed
        comparison.disagreed += disagreed


@dataclass
class FakeBackends:
    launched: list[str] = field(default_factory=list)
    stopped: list[str] = field(default_factory=list)
    dead: set[str] = field(default_factory=set)
    never_ready: bool = False

    def launch(self, status: RolloutStatus, log_dir: Path) -> Backend:
        version = status.canary.version
        self.launched.append(version)
        return Backend(
            ref=status.canary.ref,
            version=version,
            url="http://v2.fake:5002" if version == "v2" else f"http://{version}.fake:5009",
            pid=4242,
        )

    def wait_ready(self, backend: Backend, timeout: float) -> None:
        from conveyor.errors import ConveyorError

        if self.never_ready:
            raise ConveyorError(f"the backend for {backend.version} exited with 1")

    def alive(self, backend: Backend) -> bool:
        return backend.version not in self.dead

    def ready(self, backend: Backend) -> bool:
        return backend.version not in self.dead

    def stop(self, backend: Backend, grace: float) -> None:
        if backend.owned and backend.url:
            self.stopped.append(backend.version)


@dataclass
class Rig:
    """A rollout of v2 over a running v1, with the fakes a test drives it through."""

    store: StatusStore
    router: FakeRouter
    backends: FakeBackends
    clock: FakeClock
    moved: list[str]

    def controller(self) -> Controller:
        """A controller over the store: a new one is what a restarted controller process is."""
        return Controller(
            self.store,
            router=lambda url: self.router,
            backends=self.backends,
            clock=self.clock,
            move_alias=lambda status: self.moved.append(str(status.model_version)) or "alias moved",
            poll_s=1.0,
        )

    def status(self) -> RolloutStatus:
        return self.store.load()

    def window(self, healthy: int = 30, errors: int = 0, seconds: float = 0.004, label: str = "positive=true") -> None:
        """One interval of traffic, as the current stage routes it; then the clock moves past the window."""
        status = self.status()
        if status.stage == "pre-promotion":
            self.router.serve(CANARY, "v2", healthy, errors, seconds, label, kind=MIRROR)
        elif status.stage == "post-promotion":
            self.router.serve(CANARY, "v2", healthy, errors, seconds, label)
        else:
            self.router.serve(STABLE, "v1", healthy)
            self.router.serve(CANARY, "v2", healthy, errors, seconds, label)
        if status.thresholds.mirror_percent > 0:
            self.router.compare("v2", agreed=healthy)
        self.clock.sleep(INTERVAL + 0.1)

    def until(self, done: Callable[[RolloutStatus], bool], traffic: Callable[[], None] | None = None) -> RolloutStatus:
        """Reconcile (with a window of traffic between passes) until ``done``; fails after 50 passes."""
        controller = self.controller()
        for _ in range(50):
            status = controller.reconcile()
            if done(status):
                return status
            (traffic or self.window)()
        raise AssertionError(f"the rollout never got there: {status.stage}/{status.phase}: {status.message}")


def make_rig(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,  # the tests' own, so that CONVEYOR_HOME is restored after each
    strategy: str = "canary",
    steps: tuple[float, ...] = (25, 50, 100),
    with_stable: bool = True,
    **limits: float | int | bool,
) -> Rig:
    monkeypatch.setenv("CONVEYOR_HOME", str(tmp_path / "home"))
    router = FakeRouter()
    stable = Backend(ref="v1", version="v1", url="http://v1.fake:5001", pid=4141)
    if with_stable:
        router.table = RouteTable(
            backends=[BackendSpec(name=STABLE, url="http://v1.fake:5001", version="v1", weight=100)]
        )
    else:
        stable = Backend(ref="", version="", url=None, owned=False)
    thresholds = Thresholds(
        **{"min_requests": 10, "min_compared": 5, "contract": False, "mirror_percent": 20.0, **limits}
    )
    status = RolloutStatus(
        service="svc",
        strategy=strategy,  # type: ignore[arg-type]
        ref="v2",
        model_name="votes",
        model_version=2,
        router="http://fake",
        steps=list(steps),
        interval_s=INTERVAL,
        rollback_window_s=30.0,
        stable=stable,
        canary=Backend(ref="v2", version="v2"),
        thresholds=thresholds,
    )
    store = StatusStore("svc")
    store.create(status)
    return Rig(store, router, FakeBackends(), FakeClock(), [])


def canary_window(stats: RouterStats, before: dict, **limits: object):  # type: ignore[no-untyped-def,type-arg]
    """A canary-stage analysis window from ``before`` to now over ``stats`` (no contract, no mirroring)."""
    from conveyor.rollout.analysis.metric import AnalysisWindow

    return AnalysisWindow(
        stage="canary",
        before=before,
        after=stats.snapshot(),
        stable=(STABLE, "v1"),
        canary=(CANARY, "v2"),
        canary_url="http://127.0.0.1:9",
        limits=Thresholds(**{"contract": False, "mirror_percent": 0.0, **limits}),
    )
