"""The rollout's whole state as one persisted record, and the store that keeps it safe.

Ownership is split so the controller and the commands never overwrite each
other: commands only append to ``commands``; the controller owns every other
field and records the last command it handled. Every write is atomic (temp file,
fsync, rename) under a file lock, so a crash at any point leaves the previous
record or the next one, never half of one.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, model_validator

from conveyor.atomic import write_atomic
from conveyor.errors import Conflict, InvalidInput, NotFound
from conveyor.filelock import exclusive, held_elsewhere
from conveyor.home import conveyor_home
from conveyor.rollout.analysis.expectation import ExpectedAgreement
from conveyor.rollout.analysis.metric import AnalysedStage, Outcome
from conveyor.rollout.analysis.thresholds import Thresholds

Phase = Literal["progressing", "paused", "succeeded", "aborted"]
#: where a rollout is: its backend starting, a canary's live split, a blue-green's mirrored window
#: before the switch and its watched window after it, moving all traffic, rolling back, finished
Stage = Literal["starting", "canary", "pre-promotion", "post-promotion", "promoting", "aborting", "done"]
Action = Literal["pause", "resume", "promote", "promote-full", "abort", "weight"]
ACTIVE: tuple[str, ...] = ("progressing", "paused")


#: how a backend runs: a ``conveyor serve`` process, or a container of an image (``--image``)
BackendKind = Literal["process", "container"]


class Backend(BaseModel):
    """One model-server backend the router sends traffic to."""

    ref: str  # what it serves: a registry reference, or an image
    version: str  # shown by the router and in metrics, e.g. "sentiment:2"
    kind: BackendKind = "process"
    url: str | None = None
    pid: int | None = None
    container: str | None = None
    engine: str | None = None  # the container engine that runs it (podman, docker)
    log: str | None = None
    owned: bool = True  # started by a controller: the controller may stop it

    @model_validator(mode="before")
    @classmethod
    def _kind_of_older_records(cls, data: Any) -> Any:
        """Records written before ``kind`` marked a container canary with engine="container"."""
        if isinstance(data, dict) and "kind" not in data and (data.get("engine") or data.get("container")):
            data = {**data, "kind": "container"}
            if data.get("engine") == "container":
                data["engine"] = None
        return data


class Window(BaseModel):
    """The traffic window the next analysis looks at: a router snapshot taken when it opened."""

    opened_at: float
    due_at: float
    baseline: dict[str, Any]


class AnalysisRun(BaseModel):
    at: float
    stage: AnalysedStage
    step: int
    weight: float
    outcome: Outcome
    measurements: dict[str, Any] = {}
    reasons: list[str] = []


class Command(BaseModel):
    id: int
    action: Action
    at: float
    reason: str | None = None
    weight: float | None = Field(default=None, ge=0, le=100, description="the canary's traffic share (action weight)")


class Event(BaseModel):
    at: float
    message: str


class RolloutStatus(BaseModel):
    id: str = Field(default_factory=lambda: uuid.uuid4().hex[:12])
    service: str
    strategy: Literal["canary", "blue-green"]
    ref: str
    model_name: str | None = None
    model_version: int | None = None
    router: str
    phase: Phase = "progressing"
    stage: Stage = "starting"
    message: str = ""
    steps: list[float]
    step_index: int = 0
    interval_s: float
    rollback_window_s: float = 60.0
    weights: dict[str, float] = {}
    stable: Backend
    canary: Backend
    command: str | None = None  # backend command template ({port}, {ref}); None: conveyor serve
    trusted_keys: list[str] = []  # the public keys the canary's `conveyor serve` checks its signature with
    contract_path: str | None = None
    thresholds: Thresholds = Field(default_factory=Thresholds)  # a mapping: loads whatever metrics exist now
    #: the two versions' agreement on the reference sample, measured at start (None: nothing to measure)
    expected_agreement: ExpectedAgreement | None = None
    #: one line: what the canary's agreement is held to, measured or the fixed bar and why (shown at start)
    agreement_basis: str | None = None
    window: Window | None = None
    analysis: list[AnalysisRun] = []
    inconclusive_in_a_row: int = 0
    errors_in_a_row: int = 0
    abort_reason: str | None = None
    promoted_at: float | None = None
    previous_ref: str | None = None  # what was stable before: `conveyor rollout undo` goes back to it
    handled_command: int = 0
    commands: list[Command] = []
    created_at: float = Field(default_factory=time.time)
    updated_at: float = Field(default_factory=time.time)
    finished_at: float | None = None
    events: list[Event] = []

    @property
    def active(self) -> bool:
        return self.phase in ACTIVE

    @property
    def current_weight(self) -> float:
        return self.steps[min(self.step_index, len(self.steps) - 1)] if self.steps else 100.0

    def serving(self) -> dict[str, str]:
        """Router backend name -> the version it serves: after a promotion, stable serves the new version."""
        if self.phase == "succeeded":
            return {"stable": self.canary.version}
        return {name: b.version for name, b in (("stable", self.stable), ("canary", self.canary)) if b.version}

    def note(self, message: str) -> None:
        self.events.append(Event(at=time.time(), message=message))
        self.message = message

    def pending_commands(self) -> list[Command]:
        return [c for c in self.commands if c.id > self.handled_command]


def service_dir(service: str) -> Path:
    if not service or "/" in service or service.startswith("."):
        raise InvalidInput(f"invalid service name {service!r}")
    path = conveyor_home() / "rollouts" / service
    path.mkdir(parents=True, exist_ok=True)
    return path


class StatusStore:
    """``$CONVEYOR_HOME/rollouts/<service>/status.json`` (+ history/ of finished rollouts)."""

    def __init__(self, service: str) -> None:
        self.service = service
        self.dir = service_dir(service)
        self.path = self.dir / "status.json"

    def _locked(self) -> contextlib.AbstractContextManager[None]:
        return exclusive(self.dir / "status.lock")

    def _read(self) -> RolloutStatus | None:
        try:
            return RolloutStatus.model_validate_json(self.path.read_bytes())
        except FileNotFoundError:
            return None

    def load(self) -> RolloutStatus:
        status = self._read()
        if status is None:
            raise NotFound(f"no rollout for service {self.service!r}; start one with `conveyor rollout start`")
        return status

    def find(self) -> RolloutStatus | None:
        return self._read()

    def create(self, status: RolloutStatus) -> RolloutStatus:
        """Store a new rollout; refused while another rollout of the service is still active."""
        with self._locked():
            current = self._read()
            if current is not None and current.active:
                raise Conflict(
                    f"service {self.service!r} already has a rollout in progress ({current.ref}, {current.phase}); "
                    "abort it or wait for it to finish",
                )
            if current is not None:
                history = self.dir / "history"
                history.mkdir(exist_ok=True)
                write_atomic(history / f"{current.id}.json", current.model_dump_json(indent=2).encode())
            status.note(f"rollout of {status.ref} created ({status.strategy})")
            write_atomic(self.path, status.model_dump_json(indent=2).encode())
            return status

    def save(self, status: RolloutStatus) -> RolloutStatus:
        """The controller's write: every field is the controller's except the commands others appended."""
        with self._locked():
            current = self._read()
            if current is not None and current.id == status.id:
                status.commands = current.commands
            status.updated_at = time.time()
            write_atomic(self.path, status.model_dump_json(indent=2).encode())
            return status

    def command(self, action: Action, reason: str | None = None, weight: float | None = None) -> Command:
        with self._locked():
            current = self._read()
            if current is None:
                raise NotFound(f"no rollout for service {self.service!r}")
            if not current.active:
                raise Conflict(f"the rollout of {current.ref} is already {current.phase}")
            last = max([current.handled_command, *[c.id for c in current.commands]])
            if action == "weight" and current.stage != "canary":
                raise Conflict(f"the canary's traffic can be set in the canary stage only, not {current.stage}")
            command = Command(id=last + 1, action=action, at=time.time(), reason=reason, weight=weight)
            current.commands.append(command)
            write_atomic(self.path, current.model_dump_json(indent=2).encode())
            return command

    def history(self) -> list[RolloutStatus]:
        folder = self.dir / "history"
        found = [RolloutStatus.model_validate(json.loads(p.read_text())) for p in folder.glob("*.json")]
        return sorted(found, key=lambda s: s.created_at)

    @contextlib.contextmanager
    def controller_lock(self) -> Iterator[bool]:
        """Held by the one live controller of the service; released by the OS if it dies, even by SIGKILL."""
        with open(self.dir / "controller.lock", "a+") as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                yield False
                return
            lock.seek(0)
            lock.truncate()
            lock.write(str(os.getpid()))
            lock.flush()
            try:
                yield True
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def controller_running(self) -> bool:
        with open(self.dir / "controller.lock", "a+") as lock:
            return held_elsewhere(lock)


def list_services() -> list[str]:
    root = conveyor_home() / "rollouts"
    return sorted(p.name for p in root.iterdir() if p.is_dir()) if root.exists() else []


def router_file(service: str) -> Path:
    """Where ``conveyor router --service`` records its address."""
    return service_dir(service) / "router.json"


def routes_file(service: str) -> Path:
    """Where ``conveyor router --service`` keeps its routing table across restarts."""
    return service_dir(service) / "routes.json"


def write_router_address(service: str, url: str) -> None:
    write_atomic(router_file(service), json.dumps({"url": url, "pid": os.getpid()}).encode())


def router_address(service: str) -> str | None:
    try:
        return json.loads(router_file(service).read_text())["url"]
    except (FileNotFoundError, KeyError, ValueError):
        return None
