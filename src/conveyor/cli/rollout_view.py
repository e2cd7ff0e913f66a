"""The live view of a rollout: step, weights, per-version traffic, agreement and analysis results.

Each analysis run shows the measurements its metrics declare (``Metric.shown``).
"""

from __future__ import annotations

import time
from typing import Any

from rich.console import Group
from rich.table import Table
from rich.text import Text

from conveyor.rollout.analysis.run import MeasurementError, window_comparisons, window_traffic
from conveyor.rollout.analysis.thresholds import all_metrics
from conveyor.rollout.status import RolloutStatus
from conveyor.router.stats import LIVE

COLOURS = {"progressing": "cyan", "paused": "yellow", "succeeded": "green", "aborted": "red"}
OUTCOME_COLOURS = {"successful": "green", "failed": "red", "inconclusive": "yellow", "error": "magenta"}


def _ago(at: float | None) -> str:
    if at is None:
        return "-"
    seconds = max(0.0, time.time() - at)
    return f"{seconds:.0f}s ago" if seconds < 120 else f"{seconds / 60:.0f}m ago"


def _pct(value: float | None) -> str:
    return "-" if value is None or value != value else f"{value:.1%}"


def headline(status: RolloutStatus) -> Text:
    colour = COLOURS.get(status.phase, "white")
    step = f"step {status.step_index + 1}/{len(status.steps)}" if status.strategy == "canary" else status.stage
    text = Text.assemble(
        (f"{status.service}", "bold"),
        f"  {status.ref} ({status.strategy})  ",
        (status.phase.upper(), f"bold {colour}"),
        f"  {status.stage}  {step}  ",
        ", ".join(f"{name} {weight:g}%" for name, weight in status.weights.items()),
    )
    return text


def traffic_table(status: RolloutStatus, now: dict[str, Any] | None, previous: dict[str, Any] | None) -> Table:
    table = Table(title="traffic (rate: since the last refresh; errors, p99, labels: current analysis window)")
    for column in ("backend", "version", "weight", "req/s", "window requests", "errors", "p99 ms", "labels"):
        table.add_column(column, justify="left" if column in ("backend", "version", "labels") else "right")
    if now is None:
        return table
    baseline = status.window.baseline if status.window else None
    for name, version in status.serving().items():
        rate = "-"
        try:
            if previous is not None and now["at"] > previous["at"]:
                delta = window_traffic(previous, now, name, version, LIVE)
                rate = f"{delta.requests / (now['at'] - previous['at']):.1f}"
            window = window_traffic(baseline, now, name, version, LIVE) if baseline else None
        except MeasurementError:
            window = None
        p99 = window.p99_ms() if window else None
        labels = ", ".join(f"{k} {v:.0%}" for k, v in window.label_shares().items()) if window else ""
        table.add_row(
            name,
            version,
            f"{status.weights.get(name, 0):g}%",
            rate,
            str(window.requests) if window else "-",
            _pct(window.error_rate) if window and window.requests else "-",
            "-" if p99 is None else f"{p99:.1f}",
            labels,
        )
    if baseline and status.canary.version and status.phase != "succeeded":
        try:
            agreed, disagreed = window_comparisons(baseline, now, "canary", status.canary.version)
            compared = agreed + disagreed
            table.caption = f"mirrored to the canary and compared: {compared}" + (
                f", agreement {agreed / compared:.1%}" if compared else ""
            )
        except MeasurementError:
            pass
    return table


def analysis_table(status: RolloutStatus, last: int = 6) -> Table:
    table = Table(title="analysis runs")
    for column in ("when", "stage", "canary %", "outcome", "measurements / reasons"):
        table.add_column(column)
    for run in status.analysis[-last:]:
        detail = ", ".join(
            f"{key}={run.measurements[key]}" for item in all_metrics() for key in item.shown if key in run.measurements
        )
        if run.reasons:
            detail += "\n" + "\n".join(run.reasons)
        table.add_row(
            _ago(run.at),
            run.stage,
            f"{run.weight:g}",
            Text(run.outcome, style=OUTCOME_COLOURS.get(run.outcome, "white")),
            detail,
        )
    return table


def render(status: RolloutStatus, now: dict[str, Any] | None, previous: dict[str, Any] | None) -> Group:
    parts: list[Any] = [headline(status), Text(f"{status.message}", style="dim")]
    parts.append(traffic_table(status, now, previous))
    if status.analysis:
        parts.append(analysis_table(status))
    return Group(*parts)
