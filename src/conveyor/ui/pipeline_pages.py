"""Pipeline runs in the dashboard: the list, and one run's DAG with each step's state and log.

The DAG is drawn as columns by depth (a step sits one column right of the deepest step it
needs), which reads left to right like the run itself, without a layout library.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from conveyor.pipeline.history import StepRecord, list_runs, load_run

LOG_TAIL_BYTES = 16_000


def _seconds(start: str | None, end: str | None) -> float | None:
    if not start:
        return None
    try:
        began = datetime.fromisoformat(start)
        ended = datetime.fromisoformat(end) if end else datetime.now(began.tzinfo)
    except ValueError:
        return None
    return max(0.0, (ended - began).total_seconds())


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 60:
        return f"{seconds:.1f}s"
    return f"{int(seconds // 60)}m {int(seconds % 60):02d}s"


def runs_context(pipeline: str | None) -> dict[str, Any]:
    runs = list_runs(pipeline)
    rows = [
        {
            "id": run.id,
            "pipeline": run.pipeline,
            "status": run.status,
            "started_at": run.started_at,
            "duration": duration(_seconds(run.started_at, run.ended_at)),
            "steps": len(run.steps),
            "failed": [name for name, step in run.steps.items() if step.status == "failure"],
        }
        for run in runs[:500]
    ]
    return {"rows": rows, "total": len(runs), "pipeline": pipeline}


def columns(steps: dict[str, StepRecord]) -> list[list[str]]:
    """Step names grouped by depth in the ``needs`` graph (runs recorded before needs were kept: one column)."""
    depth: dict[str, int] = {}

    def of(name: str, seen: frozenset[str] = frozenset()) -> int:
        if name in depth:
            return depth[name]
        needs = [n for n in steps[name].needs if n in steps and n not in seen] if name in steps else []
        depth[name] = 1 + max((of(n, seen | {name}) for n in needs), default=-1)
        return depth[name]

    for name in steps:
        of(name)
    grouped: list[list[str]] = [[] for _ in range(max(depth.values(), default=-1) + 1)]
    for name in steps:
        grouped[depth[name]].append(name)
    return grouped


def run_context(run_id: str) -> dict[str, Any]:
    record = load_run(run_id)
    run = record.run
    steps = run.steps
    details = {}
    for name, step in steps.items():
        log = record.log_path(name)
        text = ""
        if log.is_file():
            size = log.stat().st_size
            with open(log, "rb") as handle:
                handle.seek(max(0, size - LOG_TAIL_BYTES))
                text = handle.read().decode("utf-8", "replace")
        details[name] = {
            **step.model_dump(),
            "duration": duration(_seconds(step.started_at, step.ended_at)),
            "log": text,
            "log_truncated": log.is_file() and log.stat().st_size > LOG_TAIL_BYTES,
        }
    return {
        "run": run.model_dump(),
        "columns": columns(steps),
        "steps": details,
        "duration": duration(_seconds(run.started_at, run.ended_at)),
        "running": run.status == "running",
    }
