"""``conveyor pipeline watch``: run pipelines when the registry announces a new version or an alias move,
when the served version's traffic drifts (``drift`` triggers, polled: ``drift_watch.py``), or when
MLflow's registry has a new version to import (``mlflow`` triggers: ``mlflow_watch.py``).

No polling: the watcher listens on a loopback port and registers itself as a signed webhook
of the registry (removed again when it stops).  An ``mlflow`` trigger also registers the watcher
as a webhook of MLflow's registry where the server has them (MLflow 3: ``model_version.created``
and ``model_version_alias.created``, HMAC-signed), so a new version is imported at once; the
trigger's poll every ``every`` stays as the fallback (and the only way for a server without them).
Each event that matches a pipeline's ``model_version`` or ``alias`` trigger runs that pipeline,
with its ``model`` parameter (if it has one) set to the new ``name:version``.  Events queue up
and run one at a time.
"""

from __future__ import annotations

import json
import queue
import secrets
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from conveyor.errors import ConveyorError
from conveyor.pipeline.mlflow_watch import MLFLOW_EVENTS_PATH, mlflow_signed
from conveyor.pipeline.runner import Runner, resolve_params
from conveyor.pipeline.spec import DriftTrigger, MlflowTrigger, Pipeline
from conveyor.registry.events import SIGNATURE_HEADER, verify_signature

WATCHED = ("model_version", "alias", "drift", "mlflow")
PolledTrigger = DriftTrigger | MlflowTrigger


def matches(pipeline: Pipeline, event: dict[str, Any]) -> bool:
    kind, model, alias = event.get("type"), event.get("model"), event.get("alias")
    for trigger in pipeline.triggers:
        drift, new_version, moved = trigger.drift, trigger.model_version, trigger.alias
        if drift is not None and kind == "drift" and (drift.model, drift.alias) == (model, alias):
            return True
        if trigger.mlflow is not None and kind == "mlflow" and trigger.mlflow.key == event.get("trigger"):
            return True
        if new_version is not None and kind == "model_version.created" and new_version["model"] == model:
            return True
        if moved is not None and kind == "alias.moved" and (moved["model"], moved["alias"]) == (model, alias):
            return True
    return False


def describe(trigger: PolledTrigger) -> str:
    if isinstance(trigger, DriftTrigger):
        return f"drift of {trigger.model}@{trigger.alias} in {trigger.logs} every {trigger.every}"
    return f"mlflow {trigger.key} every {trigger.every}"


class Watcher:
    def __init__(self, pipelines: dict[str, Pipeline], project: Path, on_run: Callable[[str, Any], None]) -> None:
        self.pipelines = {n: p for n, p in pipelines.items() if any(t.kind in WATCHED for t in p.triggers)}
        if not self.pipelines:
            raise ConveyorError("no pipeline has a model_version, alias, drift or mlflow trigger to watch for")
        self.project = project
        self.on_run = on_run
        self.events: queue.Queue[dict[str, Any]] = queue.Queue()
        self.secret = secrets.token_hex(16)
        self.server: ThreadingHTTPServer | None = None
        self.nudged: set[str] = set()  # MLflow models a webhook announced: checked at once
        self.nudge_lock = threading.Lock()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        watcher = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                if self.path == MLFLOW_EVENTS_PATH:
                    model = mlflow_signed(watcher.secret, body, dict(self.headers.items()))
                    if model is not None:
                        with watcher.nudge_lock:
                            watcher.nudged.add(model)
                    self.send_response(401 if model is None else 202)
                    self.end_headers()
                    return
                if not verify_signature(watcher.secret, body, self.headers.get(SIGNATURE_HEADER)):
                    self.send_response(401)
                    self.end_headers()
                    return
                watcher.events.put(json.loads(body))
                self.send_response(202)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        return Handler

    @property
    def needs_webhook(self) -> bool:
        return any(t.kind in ("model_version", "alias") for p in self.pipelines.values() for t in p.triggers)

    def mlflow_triggers(self) -> list[MlflowTrigger]:
        return [t for t in self.polled_triggers() if isinstance(t, MlflowTrigger)]

    def polled_triggers(self) -> list[PolledTrigger]:
        """The triggers the watch checks at intervals (drift and MLflow), in the file's order."""
        found: list[PolledTrigger] = []
        for pipeline in self.pipelines.values():
            found += [polled for t in pipeline.triggers if (polled := t.drift or t.mlflow)]
        return found

    def check(self, trigger: PolledTrigger, report: Callable[[str], None]) -> list[dict[str, Any]]:
        """The events TRIGGER finds now (an MLflow trigger: one per version imported, oldest first)."""
        if isinstance(trigger, DriftTrigger):
            from conveyor.pipeline.drift_watch import check_drift

            drifted = check_drift(trigger, self.project)
            return [drifted] if drifted is not None else []
        from conveyor.pipeline.mlflow_watch import check_mlflow

        return check_mlflow(trigger, self.project, report)

    def poll(self, stop: threading.Event, report: Callable[[str], None], on_error: Callable[[str], None]) -> None:
        """Check every polled trigger at its interval until ``stop``; findings join the event queue."""
        from conveyor.durations import parse_duration

        triggers = self.polled_triggers()
        due = dict.fromkeys(range(len(triggers)), 0.0)
        while not stop.is_set():
            with self.nudge_lock:
                nudged, self.nudged = self.nudged, set()
            now = time.monotonic()
            for index, trigger in enumerate(triggers):
                if isinstance(trigger, MlflowTrigger) and trigger.model in nudged:
                    due[index] = 0.0  # MLflow's webhook announced a version or an alias of this model
                if now < due[index]:
                    continue
                due[index] = now + parse_duration(trigger.every)
                try:
                    found = self.check(trigger, report)
                except ConveyorError as exc:
                    on_error(f"{describe(trigger)}: {exc}")
                    continue
                for event in found:
                    self.events.put(event)
            stop.wait(0.2)

    def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        self.server = ThreadingHTTPServer((host, port), self._handler())
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self.url()

    def url(self) -> str:
        """Where the registry's signed events go (MLflow's: ``MLFLOW_EVENTS_PATH`` on the same port)."""
        assert self.server is not None
        host, port = self.server.server_address[:2]
        return f"http://{host!s}:{port}/conveyor-events"

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()

    def handle(self, event: dict[str, Any]) -> list[tuple[str, Any]]:
        """Run every pipeline the event triggers; returns (pipeline, run record) pairs."""
        ran = []
        for name, pipeline in self.pipelines.items():
            if not matches(pipeline, event):
                continue
            overrides = {}
            if "model" in pipeline.params and event.get("version") is not None:
                overrides["model"] = f"{event['model']}:{event['version']}"
            for param, key in (("drift_report", "report"), ("drift_report_file", "report_file")):
                if param in pipeline.params and event.get(key):
                    overrides[param] = event[key]
            record = Runner(name, pipeline, self.project, resolve_params(pipeline, overrides)).run()
            self.on_run(name, record)
            ran.append((name, record))
        return ran
