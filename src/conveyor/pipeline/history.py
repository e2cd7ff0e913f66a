"""Run history: one folder per run under ``$CONVEYOR_HOME/runs/PIPELINE/RUN_ID``.

run.json        status, params, timestamps, and per step: status, attempts, duration,
                outputs, exit code, cache key, message (rewritten atomically as the run goes)
logs/STEP.log   everything the step printed, every attempt
artifacts/      files the steps hand to each other (CONVEYOR_ARTIFACTS)
"""

from __future__ import annotations

import json
import secrets
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from conveyor.atomic import write_atomic
from conveyor.errors import NotFound


def runs_root() -> Path:
    from conveyor.home import conveyor_home

    return conveyor_home() / "runs"


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def new_run_id() -> str:
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%S") + "-" + secrets.token_hex(3)


class RunRecord:
    """The persisted state of one run; thread-safe updates, atomic writes."""

    def __init__(self, folder: Path, data: dict[str, Any]) -> None:
        self.folder = folder
        self.data = data
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
        data = {
            "id": run_id,
            "pipeline": pipeline,
            "status": "running",
            "params": params,
            "artifacts": str(artifacts),
            "resumed_from": resumed_from,
            "started_at": now_iso(),
            "ended_at": None,
            "steps": {
                name: {
                    "status": "pending",
                    "attempts": 0,
                    "outputs": {},
                    "message": "",
                    "needs": (needs or {}).get(name, []),
                }
                for name in steps
            },
        }
        record = cls(folder, data)
        record.save()
        return record

    @property
    def id(self) -> str:
        return self.data["id"]

    @property
    def artifacts(self) -> Path:
        return Path(self.data["artifacts"])

    def log_path(self, step: str) -> Path:
        return self.folder / "logs" / f"{step}.log"

    def step(self, name: str) -> dict[str, Any]:
        return self.data["steps"][name]

    def update_step(self, name: str, **fields: Any) -> None:
        with self._lock:
            self.data["steps"][name].update(fields)
            self._save_locked()

    def finish(self, status: str) -> None:
        with self._lock:
            self.data["status"] = status
            self.data["ended_at"] = now_iso()
            self._save_locked()

    def save(self) -> None:
        with self._lock:
            self._save_locked()

    def _save_locked(self) -> None:
        write_atomic(self.folder / "run.json", json.dumps(self.data, indent=2, default=str))


def load_run(run_id: str, pipeline: str | None = None) -> RunRecord:
    root = runs_root()
    candidates = [root / pipeline / run_id] if pipeline else list(root.glob(f"*/{run_id}"))
    for folder in candidates:
        if (folder / "run.json").is_file():
            return RunRecord(folder, json.loads((folder / "run.json").read_text()))
    raise NotFound(f"no run {run_id!r}" + (f" of pipeline {pipeline!r}" if pipeline else ""))


def list_runs(pipeline: str | None = None) -> list[dict[str, Any]]:
    root = runs_root()
    pattern = f"{pipeline}/*/run.json" if pipeline else "*/*/run.json"
    runs = []
    for path in root.glob(pattern):
        try:
            runs.append(json.loads(path.read_text()))
        except (OSError, json.JSONDecodeError):
            continue
    return sorted(runs, key=lambda r: r["started_at"], reverse=True)
