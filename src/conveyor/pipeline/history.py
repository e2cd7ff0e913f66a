"""Run history: one folder per run under ``$CONVEYOR_HOME/runs/PIPELINE/RUN_ID``.

run.json        status, params, timestamps, and per step: status, attempts, duration,
                outputs, exit code, cache key, message (rewritten atomically as the run goes)
logs/STEP.log   everything the step printed, every attempt
artifacts/      files the steps hand to each other (CONVEYOR_ARTIFACTS)
"""

from __future__ import annotations

import secrets
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from conveyor.atomic import write_atomic
from conveyor.errors import NotFound


def runs_root() -> Path:
    from conveyor.home import conveyor_home

    return conveyor_home() / "runs"


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def new_run_id() -> str:
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%S") + "-" + secrets.token_hex(3)


#: a run: going, or over (failure when any step it ran failed)
RunStatus = Literal["running", "success", "failure"]
#: a step: not started, started (or waiting for a person's decision), or over
StepStatus = Literal["pending", "running", "waiting", "success", "failure", "skipped", "cached"]
#: the step outcomes that count as done (the steps that need it may be decided)
DONE: frozenset[str] = frozenset({"success", "failure", "skipped", "cached"})
#: the outcomes whose outputs the steps that need them may use
SUCCEEDED: frozenset[str] = frozenset({"success", "cached"})


class StepRecord(BaseModel):
    """One step of a run, as run.json keeps it (and ``--state`` carries it between CI jobs)."""

    model_config = ConfigDict(extra="ignore", validate_assignment=True)

    status: StepStatus = "pending"
    attempts: int = 0
    outputs: dict[str, Any] = Field(default_factory=dict)
    message: str = ""
    needs: list[str] = Field(default_factory=list)
    started_at: str | None = None
    ended_at: str | None = None
    exit_code: int | None = None
    cache_key: str | None = None


class Run(BaseModel):
    """One run of a pipeline: run.json."""

    model_config = ConfigDict(extra="ignore", validate_assignment=True)

    id: str
    pipeline: str
    status: RunStatus = "running"
    params: dict[str, Any] = Field(default_factory=dict)
    artifacts: str
    resumed_from: str | None = None
    started_at: str
    ended_at: str | None = None
    steps: dict[str, StepRecord] = Field(default_factory=dict)


class RunRecord:
    """The persisted state of one run; thread-safe updates, atomic writes."""

    def __init__(self, folder: Path, run: Run) -> None:
        self.folder = folder
        self.run = run
        self._lock = threading.Lock()

    @classmethod
    def create(
        cls,
        pipeline: str,
        params: dict[str, Any],
        steps: list[str],
        artifacts: Path | None = None,
        resumed_from: str | None = None,
        needs: dict[str, list[str]] | None = None,
    ) -> RunRecord:
        run_id = new_run_id()
        folder = runs_root() / pipeline / run_id
        (folder / "logs").mkdir(parents=True)
        artifacts = artifacts or folder / "artifacts"
        artifacts.mkdir(parents=True, exist_ok=True)
        run = Run(
            id=run_id,
            pipeline=pipeline,
            params=params,
            artifacts=str(artifacts),
            resumed_from=resumed_from,
            started_at=now_iso(),
            steps={name: StepRecord(needs=(needs or {}).get(name, [])) for name in steps},
        )
        record = cls(folder, run)
        record.save()
        return record

    @property
    def id(self) -> str:
        return self.run.id

    @property
    def status(self) -> RunStatus:
        return self.run.status

    @property
    def artifacts(self) -> Path:
        return Path(self.run.artifacts)

    def log_path(self, step: str) -> Path:
        return self.folder / "logs" / f"{step}.log"

    def step(self, name: str) -> StepRecord:
        return self.run.steps[name]

    def update_step(self, name: str, **fields: Any) -> None:
        with self._lock:
            current = self.run.steps[name].model_dump()
            self.run.steps[name] = StepRecord.model_validate({**current, **fields})
            self._save_locked()

    def finish(self, status: RunStatus) -> None:
        with self._lock:
            self.run.status = status
            self.run.ended_at = now_iso()
            self._save_locked()

    def save(self) -> None:
        with self._lock:
            self._save_locked()

    def _save_locked(self) -> None:
        write_atomic(self.folder / "run.json", self.run.model_dump_json(indent=2, fallback=str))


def load_run(run_id: str, pipeline: str | None = None) -> RunRecord:
    root = runs_root()
    candidates = [root / pipeline / run_id] if pipeline else list(root.glob(f"*/{run_id}"))
    for folder in candidates:
        if (folder / "run.json").is_file():
            return RunRecord(folder, Run.model_validate_json((folder / "run.json").read_text()))
    raise NotFound(f"no run {run_id!r}" + (f" of pipeline {pipeline!r}" if pipeline else ""))


def list_runs(pipeline: str | None = None) -> list[Run]:
    root = runs_root()
    pattern = f"{pipeline}/*/run.json" if pipeline else "*/*/run.json"
    runs = []
    for path in root.glob(pattern):
        try:
            runs.append(Run.model_validate_json(path.read_text()))
        except (OSError, ValidationError):
            continue
    return sorted(runs, key=lambda r: r.started_at, reverse=True)
