"""Run the model server with uvicorn: one process, or several workers sharing the port.

SIGTERM/SIGINT: uvicorn stops accepting connections, lets in-flight requests
finish (up to ``graceful_timeout`` seconds), then the batcher and the model
are closed.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from dataclasses import asdict, dataclass
from typing import Any

import uvicorn

from conveyor.serving.app import create_app
from conveyor.serving.dataplane import DataPlane, ServingOptions
from conveyor.serving.payloads import PayloadLogConfig
from conveyor.serving.runtime import RuntimeOptions
from conveyor.serving.spec import ResolvedModel, resolve_model

CONFIG_ENV = "CONVEYOR_SERVE_CONFIG"
log = logging.getLogger(__name__)


@dataclass
class ServeConfig:
    """Everything ``conveyor serve`` needs; JSON-serialisable so workers can receive it."""

    model: str
    tokenizer: str | None = None
    spec: str | None = None  # a model.yaml outside the model folder
    name: str | None = None
    version: str | None = None
    host: str = "127.0.0.1"
    port: int = 5000
    workers: int = 1
    threads: int | None = None
    device: str = "cpu"
    max_batch_size: int = 32
    max_batch_wait_ms: float = 0.0
    parallel_batches: int = 1
    max_body_bytes: int = 1_000_000
    max_items: int = 256
    graceful_timeout: float = 30.0
    log_level: str = "info"
    access_log: bool = False
    payload_log: dict[str, Any] | None = None  # PayloadLogConfig's fields

    def resolve(self) -> ResolvedModel:
        return resolve_model(self.model, self.tokenizer, self.name, self.version, spec_file=self.spec)

    def serving_options(self) -> ServingOptions:
        return ServingOptions(
            max_batch_size=self.max_batch_size,
            max_batch_wait_ms=self.max_batch_wait_ms,
            parallel_batches=self.parallel_batches,
            max_body_bytes=self.max_body_bytes,
            max_items=self.max_items,
            runtime=RuntimeOptions(device=self.device, intra_op_threads=self.threads, workers=self.workers),
            payload_log=None if self.payload_log is None else payload_log_config(self.payload_log),
        )


def plane_for(config: ServeConfig, resolved: ResolvedModel | None = None) -> DataPlane:
    """The data plane of one server process; with a payload log and a stored reference profile it
    also judges its own logged traffic for drift (``monitoring/live.py``'s gauges on ``/metrics``)."""
    resolved = resolved or config.resolve()
    options = config.serving_options()
    watch = None
    if options.payload_log is not None and options.payload_log.drift_window:
        from conveyor.monitoring.live import live_drift_for  # scipy only where a log is kept

        drift = live_drift_for(resolved, options.payload_log.drift_window)
        watch = drift.observe if drift is not None else None
    return DataPlane(resolved, options, watch=watch)


def payload_log_config(fields: dict[str, Any]) -> PayloadLogConfig:
    """PayloadLogConfig from its JSON form (tuples arrive as lists)."""
    return PayloadLogConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in fields.items()})


def _uvicorn_kwargs(config: ServeConfig) -> dict[str, object]:
    return {
        "host": config.host,
        "port": config.port,
        "log_level": config.log_level,
        "access_log": config.access_log,
        "timeout_graceful_shutdown": config.graceful_timeout,
        "backlog": 2048,
        "server_header": False,
        "http": "httptools",
        "loop": "uvloop",
    }


def app_from_env():  # type: ignore[no-untyped-def]
    """App factory for worker processes: reads the config the parent put in the environment."""
    config = ServeConfig(**json.loads(os.environ[CONFIG_ENV]))
    return create_app(plane_for(config), load_before_serving=True)


def serve(config: ServeConfig) -> int:
    """Serve until stopped; returns the process exit code (1 when the model failed to load)."""
    resolved = config.resolve()  # fail fast, before binding the port or forking workers
    logging.basicConfig(level=config.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if config.workers > 1:
        return _serve_workers(config)

    plane = plane_for(config, resolved)
    holder: dict[str, uvicorn.Server] = {}

    def stop_on_failure() -> None:
        holder["server"].should_exit = True

    app = create_app(plane, on_load_failure=stop_on_failure)
    server = uvicorn.Server(uvicorn.Config(app, **_uvicorn_kwargs(config)))  # type: ignore[arg-type]
    holder["server"] = server
    server.run()
    if plane.state == "failed":
        log.error("exiting: the model could not be loaded: %s", plane.error)
        return 1
    return 0


def _serve_workers(config: ServeConfig) -> int:
    metrics_dir = tempfile.mkdtemp(prefix="conveyor-metrics-")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir
    os.environ[CONFIG_ENV] = json.dumps(asdict(config))
    try:
        uvicorn.run(
            "conveyor.serving.server:app_from_env",
            factory=True,
            workers=config.workers,
            **_uvicorn_kwargs(config),  # type: ignore[arg-type]
        )
    finally:
        shutil.rmtree(metrics_dir, ignore_errors=True)
    return 0
