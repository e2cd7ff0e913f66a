"""The rollout controller: a linear, idempotent reconcile over the persisted status record.

Each :meth:`Controller.reconcile` reads the record, handles new commands, does
the next piece of work for the current stage and writes the record back. Every
action is safe to repeat (setting routes, starting a backend that is recorded
as started, stopping one that is gone, moving an alias), so a controller killed
at any instant resumes from the record alone: same step, same window, traffic
never interrupted, because the router and the backends run on without it.

Stages (``status.stage``):
  starting -> canary (weights per step, analysis each interval) -> promoting -> done
  starting -> pre-promotion (blue-green: mirrored traffic, contract) -> post-promotion
             (100% switched, blue kept for the rollback window) -> promoting -> done
  any -> aborting -> done (all traffic to stable, canary stopped, phase aborted)

Everything outside the record is an injected edge: the router client, the backend launcher,
the registry alias mover and the clock.  The defaults are the real ones; tests pass fakes and
drive every transition in milliseconds (tests/test_rollout_controller.py).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from conveyor.errors import ConveyorError
from conveyor.rollout.analysis.run import AnalysisWindow, MeasurementError, analyse
from conveyor.rollout.edges import CANARY, Backends, Clock, LocalBackends, Router, SystemClock, registry_alias_mover
from conveyor.rollout.router_client import RouterClient
from conveyor.rollout.status import AnalysisRun, Command, RolloutStatus, StatusStore, Window
from conveyor.router.routing import BackendSpec, RouteTable
from conveyor.verify.contract import Contract, load_contract

log = logging.getLogger("conveyor.rollout")

STABLE = "stable"
READY_TIMEOUT_S = 300.0
ANALYSIS_HISTORY = 200


class Controller:
    def __init__(
        self,
        store: StatusStore,
        *,
        poll_s: float = 0.25,
        move_alias: Callable[[RolloutStatus], str | None] | None = None,
        router: Callable[[str], Router] = RouterClient,
        backends: Backends | None = None,
        clock: Clock | None = None,
    ) -> None:
        self.store = store
        self.poll_s = poll_s
        self.move_alias = move_alias or registry_alias_mover("production")
        self.connect = router
        self.backends: Backends = backends or LocalBackends()
        self.clock: Clock = clock or SystemClock()
        self._contract: tuple[str | None, Contract] | None = None

    # -- the loop ---------------------------------------------------------------------------------------

    def run(self, on_tick: Callable[[RolloutStatus], None] | None = None) -> RolloutStatus:
        """Reconcile until the rollout succeeded or aborted; refused if another controller runs for the service."""
        with self.store.controller_lock() as acquired:
            if not acquired:
                raise ConveyorError(f"a controller is already running for service {self.store.service!r}")
            while True:
                status = self.reconcile()
                if on_tick is not None:
                    on_tick(status)
                if not status.active:
                    return status
                self.clock.sleep(self.poll_s)

    def reconcile(self) -> RolloutStatus:
        status = self.store.load()
        if not status.active:
            return status
        router = self.connect(status.router)
        try:
            for command in status.pending_commands():
                self._handle(status, command)
                status.handled_command = command.id
            if status.abort_reason is not None or status.stage == "aborting":
                return self._rollback(status, router)
            if status.phase == "paused":
                self._ensure_routes(status, router)
                return self.store.save(status)
            step = {
                "starting": self._start,
                "canary": self._canary,
                "pre-promotion": self._pre_promotion,
                "post-promotion": self._post_promotion,
                "promoting": self._promote,
            }[status.stage]
            return step(status, router)
        except MeasurementError as exc:
            return self._measurement_error(status, str(exc))
        finally:
            router.close()

    # -- commands ---------------------------------------------------------------------------------------

    def _handle(self, status: RolloutStatus, command: Command) -> None:
        who = f" ({command.reason})" if command.reason else ""
        if command.action == "abort":
            status.abort_reason = f"aborted by a user{who}"
        elif command.action == "pause" and status.phase == "progressing":
            status.phase = "paused"
            status.note(f"paused by a user{who}")
        elif command.action == "resume" and status.phase == "paused":
            status.phase = "progressing"
            status.window = None
            status.inconclusive_in_a_row = status.errors_in_a_row = 0
            status.note(f"resumed by a user{who}")
        elif command.action == "promote":
            status.phase = "progressing"
            if status.stage == "canary":
                status.note(f"step {status.step_index + 1} promoted by a user{who}")
                self._advance(status)
            elif status.stage == "pre-promotion":
                self._switch_over(status)
            elif status.stage == "post-promotion":
                status.stage = "promoting"
        elif command.action == "weight" and command.weight is not None and status.stage == "canary":
            weight = command.weight
            status.phase = "paused"
            status.weights = {STABLE: 100.0 - weight, CANARY: weight}
            # the held share becomes the current step: resume analyses it, promote goes to the next step above it
            done = status.steps[: status.step_index]
            status.steps = [*[s for s in done if s < weight], weight, *[s for s in status.steps if s > weight]]
            status.step_index = len([s for s in done if s < weight])
            status.window = None
            status.note(f"canary traffic set to {weight:g}% by a user{who}; paused until resume or promote")
        elif command.action == "promote-full" and status.stage not in ("starting", "aborting"):
            status.phase = "progressing"
            status.note(f"fully promoted by a user{who}: skipping the remaining steps and analysis")
            status.stage = "promoting"

    # -- stages -----------------------------------------------------------------------------------------

    def _start(self, status: RolloutStatus, router: Router) -> RolloutStatus:
        canary = status.canary
        if canary.url is None:
            started = self.backends.launch(status, self.store.dir)
            status.canary = started
            status.note(f"started {started.version} at {started.url}")
            self.store.save(status)  # record the pid before waiting: a restarted controller must find it
            canary = started
        try:
            self.backends.wait_ready(canary, READY_TIMEOUT_S)
        except ConveyorError as exc:
            status.abort_reason = f"the new version did not become ready: {exc}"
            return self._rollback(status, router)
        if status.stable.url is None:  # the service's first version: nothing to compare with
            status.note(f"{canary.version} is ready; first version of the service, routing all traffic to it")
            status.stage = "promoting"
            return self._promote(status, router)
        status.stage = "canary" if status.strategy == "canary" else "pre-promotion"
        status.note(f"{canary.version} is ready; {status.stage} stage")
        self._ensure_routes(status, router)
        return self.store.save(status)

    def _canary_gone(self, status: RolloutStatus, router: Router) -> RolloutStatus | None:
        if not self.backends.alive(status.canary):
            status.abort_reason = f"the canary backend ({status.canary.version}) exited"
            return self._rollback(status, router)
        return None

    def _canary(self, status: RolloutStatus, router: Router) -> RolloutStatus:
        gone = self._canary_gone(status, router)
        if gone is not None:
            return gone
        self._ensure_routes(status, router)
        return self._analyse_when_due(status, router, on_success=self._advance)

    def _pre_promotion(self, status: RolloutStatus, router: Router) -> RolloutStatus:
        gone = self._canary_gone(status, router)
        if gone is not None:
            return gone
        self._ensure_routes(status, router)
        return self._analyse_when_due(status, router, on_success=self._switch_over)

    def _post_promotion(self, status: RolloutStatus, router: Router) -> RolloutStatus:
        gone = self._canary_gone(status, router)
        if gone is not None:
            return gone
        self._ensure_routes(status, router)
        if status.promoted_at is not None and self.clock.time() - status.promoted_at >= status.rollback_window_s:
            status.note("rollback window passed without a failed analysis")
            status.stage = "promoting"
            return self._promote(status, router)
        return self._analyse_when_due(status, router, on_success=lambda s: None, post=True)

    def _promote(self, status: RolloutStatus, router: Router) -> RolloutStatus:
        """Idempotent: the canary becomes the stable backend, the old one stops, @production moves."""
        status.stage = "promoting"
        self.store.save(status)
        canary = status.canary
        router.set_routes(self._table(status, router, {STABLE: 100.0}, promoted=True))
        status.weights = {STABLE: 100.0}
        moved = self.move_alias(status)
        if moved:
            status.note(moved)
        if status.stable.url is not None:
            self.backends.stop(status.stable, 10.0)
            status.previous_ref = status.stable.ref
        status.phase, status.stage = "succeeded", "done"
        status.finished_at = self.clock.time()
        status.note(f"{canary.version} promoted: it serves 100% of traffic")
        return self.store.save(status)

    def _rollback(self, status: RolloutStatus, router: Router) -> RolloutStatus:
        """Idempotent abort: all traffic to stable, the canary stopped, the rollout marked aborted."""
        reason = status.abort_reason or "aborted"
        if status.stage != "aborting":
            status.stage = "aborting"
            status.abort_reason = reason
            status.note(f"rolling back: {reason}")
            self.store.save(status)
        if status.stable.url is not None:
            router.set_routes(self._table(status, router, {STABLE: 100.0}))
            status.weights = {STABLE: 100.0}
        self.backends.stop(status.canary, 5.0)
        healthy = status.stable.url is None or self.backends.ready(status.stable)
        status.phase, status.stage = "aborted", "done"
        status.finished_at = self.clock.time()
        where = f"stable {status.stable.version} serves 100%" if status.stable.url else "no version serves"
        said = reason if reason.startswith("aborted") else f"aborted ({reason})"  # "aborted by a user (...)" once
        status.note(f"{said}; {where}" + ("" if healthy else " but does NOT answer its health check"))
        return self.store.save(status)

    # -- analysis ---------------------------------------------------------------------------------------

    def _analyse_when_due(
        self,
        status: RolloutStatus,
        router: Router,
        on_success: Callable[[RolloutStatus], None],
        post: bool = False,
    ) -> RolloutStatus:
        now = self.clock.time()
        if status.window is None:
            status.window = Window(opened_at=now, baseline=router.stats(), due_at=now + status.interval_s)
            return self.store.save(status)
        if now < status.window.due_at:
            return self.store.save(status)
        stage = status.stage
        assert stage in ("canary", "pre-promotion", "post-promotion")  # the stages that analyse
        verdict = analyse(
            AnalysisWindow(
                stage=stage,
                before=status.window.baseline,
                after=router.stats(),
                stable=(STABLE, status.stable.version),
                canary=(CANARY, status.canary.version),
                canary_url=status.canary.url or "",
                stable_url=status.stable.url or "",
                limits=status.thresholds,
                contract=self._load_contract(status.contract_path),
                model_name=status.model_name,
                expected_agreement=status.expected_agreement,
            )
        )
        status.analysis.append(
            AnalysisRun(
                at=now,
                stage=status.stage,
                step=status.step_index,
                weight=status.weights.get(CANARY, 0.0),
                outcome=verdict.outcome,
                measurements=verdict.measurements,
                reasons=verdict.reasons,
            )
        )
        del status.analysis[:-ANALYSIS_HISTORY]
        status.errors_in_a_row = 0
        if verdict.outcome == "failed":
            status.abort_reason = "analysis failed: " + "; ".join(r.removeprefix("failed: ") for r in verdict.reasons)
            return self._rollback(status, router)
        if verdict.outcome == "inconclusive":
            status.inconclusive_in_a_row += 1
            if status.inconclusive_in_a_row >= status.thresholds.max_inconclusive and not post:
                status.phase = "paused"
                status.note(
                    f"paused: {status.inconclusive_in_a_row} inconclusive analyses in a row "
                    f"({'; '.join(verdict.reasons)}); `conveyor rollout resume` or `promote` to go on"
                )
            else:
                status.note("analysis inconclusive, waiting for more data: " + "; ".join(verdict.reasons))
                status.window.due_at = now + status.interval_s  # keep the baseline: the window grows
            return self.store.save(status)
        status.inconclusive_in_a_row = 0
        status.note(f"analysis successful ({status.stage}, {status.weights.get(CANARY, 0):g}% canary)")
        status.window = None
        on_success(status)
        if status.stage == "promoting":
            return self._promote(status, router)
        self._ensure_routes(status, router)
        return self.store.save(status)

    def _measurement_error(self, status: RolloutStatus, message: str) -> RolloutStatus:
        status.errors_in_a_row += 1
        limit = status.thresholds.max_measurement_errors
        if status.errors_in_a_row > limit:
            status.abort_reason = f"{status.errors_in_a_row} measurement errors in a row, the last: {message}"
            router = self.connect(status.router)
            try:
                return self._rollback(status, router)
            except MeasurementError as exc:
                status.note(f"cannot roll back yet: {exc}")
                return self.store.save(status)
            finally:
                router.close()
        status.note(f"measurement error {status.errors_in_a_row}/{limit} tolerated: {message}")
        self.clock.sleep(min(2.0, status.interval_s / 4))
        return self.store.save(status)

    def _load_contract(self, path: str | None) -> Contract:
        if self._contract is None or self._contract[0] != path:
            self._contract = (path, load_contract(Path(path)) if path else Contract())
        return self._contract[1]

    # -- steps and routes -------------------------------------------------------------------------------

    def _advance(self, status: RolloutStatus) -> None:
        status.step_index += 1
        status.window = None
        if status.step_index >= len(status.steps) or status.current_weight >= 100:
            status.step_index = min(status.step_index, len(status.steps) - 1)
            status.stage = "promoting"
        else:
            status.note(f"step {status.step_index + 1}/{len(status.steps)}: {status.current_weight:g}% to the canary")

    def _switch_over(self, status: RolloutStatus) -> None:
        status.stage = "post-promotion"
        status.promoted_at = self.clock.time()
        status.window = None
        status.note(f"switched 100% to {status.canary.version}; {status.stable.version} kept for the rollback window")

    def desired_weights(self, status: RolloutStatus) -> dict[str, float]:
        if status.stage == "canary":
            weight = status.current_weight
            return {STABLE: 100.0 - weight, CANARY: weight}
        if status.stage == "pre-promotion":
            return {STABLE: 100.0, CANARY: 0.0}
        if status.stage == "post-promotion":
            return {STABLE: 0.0, CANARY: 100.0}
        return {STABLE: 100.0}

    def _table(
        self,
        status: RolloutStatus,
        router: Router,
        weights: dict[str, float],
        promoted: bool = False,
        current: RouteTable | None = None,
    ) -> RouteTable:
        """The table the router should have; ``current`` (fetched when not given) supplies its sticky header."""
        current = current if current is not None else router.routes()
        if promoted:
            canary = status.canary
            specs = [BackendSpec(name=STABLE, url=canary.url or "", version=canary.version, weight=100.0)]
            return RouteTable(backends=specs, sticky_header=current.sticky_header)
        specs = [BackendSpec(name=STABLE, url=status.stable.url or "", version=status.stable.version, weight=0.0)]
        if CANARY in weights and status.canary.url:
            specs.append(BackendSpec(name=CANARY, url=status.canary.url, version=status.canary.version, weight=0.0))
        for spec in specs:
            spec.weight = weights.get(spec.name, 0.0)
        mirror = status.thresholds.mirror_percent if CANARY in weights and weights[CANARY] < 100 else 0.0
        return RouteTable(
            backends=specs,
            mirror_percent=mirror,
            mirror_to=CANARY if mirror > 0 else None,
            value_tolerance=status.thresholds.value_tolerance,
            value_tolerance_abs=status.thresholds.value_tolerance_abs,
            sticky_header=current.sticky_header,
        )

    def _ensure_routes(self, status: RolloutStatus, router: Router) -> None:
        """Make the router match the status (also after a router restart); a no-op when it already does."""
        weights = status.weights if status.phase == "paused" and status.weights else self.desired_weights(status)
        current = router.routes()
        wanted = self._table(status, router, weights, current=current)
        if current != wanted:
            router.set_routes(wanted)
        status.weights = weights
