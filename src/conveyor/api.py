"""Conveyor from Python: register, alias, download and roll out from a training script or a notebook.

    from conveyor import open_registry, start_rollout

    registry = open_registry()                       # CONVEYOR_REGISTRY, else the embedded one
    version = registry.register(Path("model"), "sentiment", aliases=["staging"],
                                progress=ProgressBar())
    registry.set_alias("sentiment", "production", version.version)

    rollout = start_rollout("sentiment:3", steps=[10, 50, 100], interval="30s")
    rollout.set_weight(20)                           # 20% of live traffic to the new version, paused
    rollout.promote()                                # next step (or rollout.promote(full=True))
    rollout.abort("latency looks wrong")             # all traffic back to stable

The same library code as the ``conveyor`` command runs underneath (``rollout.service``,
``rollout.controller``), with the same named errors (``conveyor.errors``) and the same
progress bar (``conveyor.progress``).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from conveyor.errors import ConveyorError
from conveyor.registry.config import open_registry
from conveyor.rollout.status import Action, RolloutStatus, StatusStore

__all__ = ["Rollout", "attach_rollout", "open_registry", "start_rollout"]


class Rollout:
    """A handle on the rollout of one service; every call reads or changes the persisted record."""

    def __init__(self, service: str) -> None:
        self.service = service
        self.store = StatusStore(service)

    def __repr__(self) -> str:
        status = self.status()
        return f"<Rollout {self.service}: {status.ref} {status.phase} {status.stage} {status.weights}>"

    def status(self) -> RolloutStatus:
        """The current record: phase, stage, weights, analysis runs, events."""
        return self.store.load()

    def _command(
        self, action: Action, reason: str | None, weight: float | None = None, wait: float = 30.0
    ) -> RolloutStatus:
        from conveyor.rollout import service as rollouts

        return rollouts.command(rollouts.CommandRequest(action, self.service, reason, weight=weight, wait=wait))

    def set_weight(self, percent: float, reason: str | None = None, wait: float = 30.0) -> RolloutStatus:
        """Send ``percent`` of live traffic to the new version and hold there (resume or promote to go on).

        Every command waits up to ``wait`` seconds for the controller to act on it (ConveyorError after).
        """
        return self._command("weight", reason, weight=float(percent), wait=wait)

    def promote(self, full: bool = False, reason: str | None = None, wait: float = 30.0) -> RolloutStatus:
        """Go to the next step now (blue-green: switch now); ``full`` goes straight to 100%."""
        return self._command("promote-full" if full else "promote", reason, wait=wait)

    def pause(self, reason: str | None = None, wait: float = 30.0) -> RolloutStatus:
        return self._command("pause", reason, wait=wait)

    def resume(self, reason: str | None = None, wait: float = 30.0) -> RolloutStatus:
        return self._command("resume", reason, wait=wait)

    def abort(self, reason: str | None = None, wait: float = 30.0) -> RolloutStatus:
        """Roll back: all traffic to stable, the new version stopped; returns once that is done."""
        return self._command("abort", reason, wait=wait)

    def wait(self, timeout: float = 600.0, poll_s: float = 0.5) -> RolloutStatus:
        """Block until the rollout succeeded or aborted (ConveyorError after ``timeout`` seconds)."""
        import time

        deadline = time.monotonic() + timeout
        while True:
            status = self.status()
            if not status.active or time.monotonic() >= deadline:
                break
            time.sleep(poll_s)
        if status.active:
            raise ConveyorError(f"the rollout of {status.ref} is still {status.phase} after {timeout:g}s")
        return status


def start_rollout(
    ref: str,
    *,
    service: str | None = None,
    router: str | None = None,
    strategy: str | None = None,
    steps: Iterable[float] | str | None = None,
    interval: str | float | None = None,
    rollback_window: str | float | None = None,
    contract: Path | str | None = None,
    analyse_contract: bool = True,
    image: str | None = None,
    command: str | None = None,
    thresholds: dict[str, Any] | None = None,
    config: Path | str | None = None,
    wait: bool = False,
) -> Rollout:
    """Start rolling out ``ref`` (``name:N`` or ``name@alias``) through the service's router.

    The options are those of ``conveyor rollout start`` (None: conveyor.yaml's ``rollout:``
    section, else the default); ``thresholds`` takes the analysis thresholds by name
    (``{"max_error_rate": 0.02, "max_prediction_shift": 0.1}``).  The controller runs in the
    background; ``wait=True`` blocks until the rollout succeeded or aborted.
    """
    from conveyor.rollout import service as rollouts

    request = rollouts.StartRequest(
        ref,
        service=service,
        router=router,
        strategy=strategy,
        steps=list(steps) if steps is not None and not isinstance(steps, str) else steps,
        interval=interval,
        rollback_window=rollback_window,
        contract=Path(contract) if contract else None,
        no_contract=not analyse_contract,
        image=image,
        command=command,
        thresholds=dict(thresholds or {}),
    )
    status = rollouts.start(request, Path(config) if config else None)
    rollout = Rollout(status.service)
    if wait:
        rollout.wait()
    return rollout


def attach_rollout(service: str) -> Rollout:
    """A handle on the existing rollout of ``service`` (NotFound when it never had one)."""
    rollout = Rollout(service)
    rollout.status()
    return rollout
