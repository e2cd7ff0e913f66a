"""A person's decision on a waiting step (approve or reject), kept beside the run it belongs to.

``conveyor pipeline approve RUN STEP`` (or ``reject``), from any terminal, writes
``decisions/STEP.json`` in the run's folder; the first decision wins and cannot be changed.
The waiting step's own process polls for it, so the runner needs no server and a run whose
runner was killed can be resumed: the resumed run finds the decision made on the run it
resumes.  Who decided and why end up in the step's outputs, hence in the run history, and a
``register`` step later in the same run copies them into the version's lineage.
"""

from __future__ import annotations

import getpass
import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from conveyor.atomic import create_exclusive
from conveyor.errors import Conflict, NotFound
from conveyor.pipeline.history import RunRecord, load_run, now_iso


@dataclass(frozen=True)
class Decision:
    step: str
    approved: bool
    by: str
    reason: str
    at: str

    def as_dict(self) -> dict[str, str | bool]:
        return asdict(self)


def _path(folder: Path, step: str) -> Path:
    return folder / "decisions" / f"{step}.json"


def decide(run_id: str, step: str, *, approved: bool, by: str | None = None, reason: str = "") -> Decision:
    """Record the decision on ``step`` of ``run_id``; refused unless the step waits for one."""
    record = load_run(run_id)
    if step not in record.run.steps:
        raise NotFound(f"run {run_id} has no step {step!r} (steps: {', '.join(record.run.steps)})")
    status = record.step(step).status
    if status != "waiting":
        raise Conflict(f"step {step!r} of run {run_id} is {status}, not waiting for a decision")
    decision = Decision(step, approved, by or getpass.getuser(), reason, now_iso())
    if not create_exclusive(_path(record.folder, step), json.dumps(decision.as_dict())):
        earlier = find_decision(record, step)
        verdict = "approved" if earlier and earlier.approved else "rejected"
        by_whom = f" by {earlier.by}" if earlier else ""
        raise Conflict(f"step {step!r} of run {run_id} was already {verdict}{by_whom}")
    return decision


def find_decision(record: RunRecord, step: str) -> Decision | None:
    """The decision on ``step`` of this run, or of the run it resumed (and so on back)."""
    seen: set[str] = set()
    current: RunRecord | None = record
    while current is not None and current.id not in seen:
        seen.add(current.id)
        path = _path(current.folder, step)
        if path.is_file():
            return Decision(**json.loads(path.read_text()))
        earlier = current.run.resumed_from
        current = load_run(earlier, current.run.pipeline) if earlier else None
    return None


def wait_for_decision(run_id: str, step: str, timeout: float, poll_s: float = 0.5) -> Decision | None:
    """Block until someone decides on ``step`` (None when ``timeout`` seconds pass first)."""
    record = load_run(run_id)
    deadline = time.monotonic() + timeout
    while True:
        decision = find_decision(record, step)
        if decision is not None or time.monotonic() >= deadline:
            return decision
        time.sleep(min(poll_s, max(0.0, deadline - time.monotonic())))


def run_approvals(run_id: str) -> list[Decision]:
    """Every decision made in this run so far (for a version's lineage)."""
    try:
        record = load_run(run_id)
    except NotFound:
        return []
    found = [find_decision(record, step) for step in record.run.steps]
    return [d for d in found if d is not None]
