"""``conveyor pipeline watch``: run pipelines when the registry announces a new version or an alias move,
when the served version's traffic drifts (``drift`` triggers, polled: ``drift_watch.py``), or when
MLflow's registry has a new version to import (``mlflow`` triggers, polled: ``mlflow_watch.py``).

No polling: the watcher listens on a loopback port and registers itself as a signed webhook
of the registry (removed again when it stops).  Each event that matches a pipeline's
``model_version`` or ``alias`` trigger runs that pipeline, with its ``model`` parameter (if
it has one) set to the new ``name:version``.  Events queue up and run one at a time.
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

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        watcher = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
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

    def polled_triggers(self) -> list[PolledTrigger]:
        """The triggers the watch checks at intervals (drift and MLflow), in the file's order."""
        found: list[PolledTrigger] = []
        for pipeline in self.pipelines.values():
            found += [polled for t in pipeline.triggers if (polled := t.drift or t.mlflow)]
        return found

    def check(self, trigger: PolledTrigger, report: Callable[[str], None]) -> dict[str, Any] | None:
        if isinstance(trigger, DriftTrigger):
            from conveyor.pipeline.drift_watch import check_drift

            return check_drift(trigger, self.project)
        from conveyor.pipeline.mlflow_watch import check_mlflow

        return check_mlflow(trigger, self.project, report)

    def poll(self, stop: threading.Event, report: Callable[[str], None], on_error: Callable[[str], None]) -> None:
        """Check every polled trigger at its interval until ``stop``; findings join the event queue."""
        from conveyor.durations import parse_duration

        triggers = self.polled_triggers()
        due = dict.fromkeys(range(len(triggers)), 0.0)
        while not stop.is_set():
            now = time.monotonic()
            for index, trigger in enumerate(triggers):
                if now < due[index]:
                    continue
                due[index] = now + parse_duration(trigger.every)
                try:
                    event = self.check(trigger, report)
                except ConveyorError as exc:
                    on_error(f"{describe(trigger)}: {exc}")
                    continue
                if event is not None:
                    self.events.put(event)
            stop.wait(0.5)

    def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        self.server = ThreadingHTTPServer((host, port), self._handler())
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return f"http://{host}:{self.server.server_port}/conveyor-events"

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
