"""Rollouts in the dashboard: every service in one table, one rollout live, and its buttons.

A rollout page reads the persisted status (the controller's record, ``rollout/status.py``) and
the router's counters over time (``live.py``). Buttons call the same use-cases as the CLI
(``rollout/service.py``): promote, pause, resume and abort are commands the controller acts on,
retry and undo start a new rollout from the last one with its controller in the background.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

from conveyor.charts import line_chart
from conveyor.errors import InvalidInput, NotFound
from conveyor.extras import needs
from conveyor.rollout.analysis.thresholds import all_metrics
from conveyor.rollout.status import RolloutStatus, StatusStore, list_services
from conveyor.ui.live import SAMPLER, Live

with needs("ui", "the dashboard (conveyor ui)"):
    from markupsafe import Markup

if TYPE_CHECKING:
    from conveyor.rollout.status import Action

COMMANDS = ("promote", "promote-full", "pause", "resume", "abort")
RESTARTS = ("retry", "undo")
ACTIONS = COMMANDS + RESTARTS


@dataclass
class Button:
    action: str
    label: str
    confirm: str
    danger: bool = False


def buttons_for(status: RolloutStatus) -> list[Button]:
    """The actions that make sense in the rollout's phase, as the CLI would accept them."""
    who = f"{status.ref} of {status.service}"
    if status.phase == "progressing":
        return [
            Button("promote", "Promote", f"Promote {who} to the next step?"),
            Button("promote-full", "Promote fully", f"Send all traffic to {who} now, skipping analysis?"),
            Button("pause", "Pause", f"Pause the rollout of {who}?"),
            Button("abort", "Abort", f"Abort the rollout of {who}: all traffic back to stable?", danger=True),
        ]
    if status.phase == "paused":
        return [
            Button("resume", "Resume", f"Resume the rollout of {who}?"),
            Button("promote", "Promote", f"Promote {who} to the next step?"),
            Button("abort", "Abort", f"Abort the rollout of {who}: all traffic back to stable?", danger=True),
        ]
    if status.phase == "aborted":
        return [Button("retry", "Retry", f"Roll out {status.ref} again?")]
    if status.phase == "succeeded" and status.previous_ref:
        return [Button("undo", "Undo", f"Roll {status.service} back to {status.previous_ref}?", danger=True)]
    return []


def load_status(service: str) -> RolloutStatus:
    found = StatusStore(service).find()
    if found is None:
        raise NotFound(f"no rollout of service {service!r}")
    return found


def rollouts_context() -> dict[str, Any]:
    statuses = [status for service in list_services() if (status := StatusStore(service).find()) is not None]
    statuses.sort(key=lambda status: (not status.active, -status.updated_at))
    return {
        "rows": [{"status": status, "last": status.analysis[-1] if status.analysis else None} for status in statuses]
    }


def _metric_rows(status: RolloutStatus, run: Any) -> list[dict[str, Any]]:
    """Per metric of one analysis run: what it measured, the thresholds it applied, the reasons it gave."""
    limits = status.thresholds
    rows = []
    for metric in all_metrics():
        measured = {key: run.measurements[key] for key in metric.shown if key in run.measurements}
        if not measured:
            continue
        rows.append(
            {
                "name": metric.name,
                "summary": metric.summary,
                "measured": measured,
                "limits": {t.name: getattr(limits, t.name) for t in metric.thresholds},
            }
        )
    return rows


def _charts(live: Live) -> list[Any]:
    def series(attr: str, scale: float = 1.0) -> dict[str, list[tuple[float, float | None]]]:
        return {
            role: [(p.at, None if getattr(p, attr) is None else getattr(p, attr) * scale) for p in points]
            for role, points in live.series.items()
        }

    return [
        Markup(line_chart("requests per second", series("requests_per_s"), "/s")),
        Markup(line_chart("error rate", series("error_rate", 100.0), "%")),
        Markup(line_chart("p50 latency", series("p50_ms"), " ms")),
        Markup(line_chart("p99 latency", series("p99_ms"), " ms")),
    ]


def rollout_context(service: str, sample: bool = True) -> dict[str, Any]:
    status = load_status(service)
    if sample and status.router:
        SAMPLER.sample(service, status.router)
    live = SAMPLER.live(status)
    runs = [{"run": run, "metrics": _metric_rows(status, run)} for run in reversed(status.analysis[-20:])]
    agreed = live.agreement
    return {
        "status": status,
        "live": live,
        "charts": _charts(live),
        "runs": runs,
        "events": list(reversed(status.events[-50:])),
        "buttons": buttons_for(status),
        "agreement": None if not agreed or not sum(agreed) else agreed[0] / sum(agreed),
        "mirrored": agreed,
        "now": time.time(),
    }


def act(service: str, action: str, reason: str) -> str:
    """Carry out a button's action; a line saying what happened."""
    from conveyor.rollout import service as rollouts

    if action not in ACTIONS:
        raise InvalidInput(f"unknown action {action!r}; actions: {', '.join(ACTIONS)}")
    load_status(service)  # NotFound before anything is recorded
    if action == "retry":
        started = rollouts.retry(rollouts.RetryRequest(service))
    elif action == "undo":
        started = rollouts.undo(rollouts.UndoRequest(service))
    else:
        command = cast("Action", action)  # one of COMMANDS: checked above
        after = rollouts.command(rollouts.CommandRequest(command, service, reason, wait=20.0))
        return f"{action}: {after.ref} is {after.phase} ({after.stage}), {_weights(after)}"
    return f"{action}: rollout {started.id} of {started.ref} started"


def _weights(status: RolloutStatus) -> str:
    return ", ".join(f"{name} {weight:g}%" for name, weight in status.weights.items()) or "no traffic split"
