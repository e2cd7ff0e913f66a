"""Run the model server with uvicorn: one process, or several workers sharing the port.

SIGTERM/SIGINT: the server answers the connections waiting in its listen queue,
stops accepting, lets in-flight requests finish (up to ``graceful_timeout``
seconds), closes the batcher and the model, and ends by the signal, with one
worker or several (``conveyor/http_server.py``).
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from typing import Any

import uvicorn

from conveyor.errors import InvalidInput
from conveyor.http_server import DrainingServer, run, server_config
from conveyor.serving.app import create_app
from conveyor.serving.dataplane import DataPlane, ServingOptions
from conveyor.serving.heap import freeze_loaded_heap
from conveyor.serving.predict_route import PredictRoute
from conveyor.serving.runtime import RuntimeOptions
from conveyor.serving.settings import ServeSettings
from conveyor.serving.spec import ResolvedModel, resolve_model

CONFIG_ENV = "CONVEYOR_SERVE_CONFIG"
log = logging.getLogger(__name__)


def resolve(settings: ServeSettings) -> ResolvedModel:
    return resolve_model(
        settings.model, settings.tokenizer, settings.name, settings.model_version, spec_file=settings.spec
    )


def serving_options(settings: ServeSettings) -> ServingOptions:
    return ServingOptions(
        max_batch_size=settings.max_batch_size,
        max_batch_wait_ms=settings.max_batch_wait_ms,
        parallel_batches=settings.parallel_batches,
        max_body_bytes=settings.max_body_bytes,
        max_items=settings.max_items,
        runtime=RuntimeOptions(device=settings.device, intra_op_threads=settings.threads, workers=settings.workers),
        payload_log=settings.payload_log_config(drift_window=settings.drift_window),
    )


def plane_for(config: ServeSettings, resolved: ResolvedModel | None = None) -> DataPlane:
    """The data plane of one server process; with a payload log and a stored reference profile it
    also judges its own logged traffic for drift (``monitoring/live.py``'s gauges on ``/metrics``).

    The gauges are computed in numpy (``monitoring/statistics.py``), so the served image, which leaves
    scipy and scikit-learn out, keeps them too."""
    resolved = resolved or resolve(config)
    options = serving_options(config)
    watch = None
    if options.payload_log is not None and options.payload_log.drift_window:
        from conveyor.monitoring.live import live_drift_for  # loaded only where a log is kept

        drift = live_drift_for(resolved, options.payload_log.drift_window, options.payload_log.hash)
        watch = drift.observe if drift is not None else None
    return DataPlane(resolved, options, watch=watch)


def _uvicorn_config(app: Any, config: ServeSettings, **more: Any) -> uvicorn.Config:
    return server_config(
        app,
        config.host,
        config.port,
        config,
        log_level=config.log_level,
        access_log=config.access_log,
        timeout_graceful_shutdown=config.graceful_timeout,
        backlog=2048,
        loop="uvloop",
        **more,
    )


def app_from_env() -> PredictRoute:
    """App factory for worker processes: reads the config the parent put in the environment."""
    config = ServeSettings.model_validate_json(os.environ[CONFIG_ENV])
    return create_app(plane_for(config), load_before_serving=True, on_ready=freeze_loaded_heap)


def serve(config: ServeSettings) -> int:
    """Serve until stopped; returns the process exit code (1 when the model failed to load)."""
    resolved = resolve(config)  # fail fast, before binding the port or forking workers
    logging.basicConfig(level=config.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if resolved.spec.task.openai_api:
        return _serve_generation(config, resolved)
    if config.workers > 1:
        return _serve_workers(config)

    plane = plane_for(config, resolved)
    holder: dict[str, uvicorn.Server] = {}

    def stop_on_failure() -> None:
        holder["server"].should_exit = True

    app = create_app(plane, on_load_failure=stop_on_failure, on_ready=freeze_loaded_heap)
    server = DrainingServer(_uvicorn_config(app, config))
    holder["server"] = server
    server.run()  # stopped by a signal, it ends the process by that signal
    if plane.state == "failed":
        log.error("exiting: the model could not be loaded: %s", plane.error)
        return 1
    return 0


def _serve_generation(config: ServeSettings, resolved: ResolvedModel) -> int:
    """A GGUF version (its slots generating in parallel) or an embedding model answering the OpenAI API: one
    process."""
    if config.workers > 1:
        raise InvalidInput("--workers: a generative model is served by one process; --slots generate in parallel")
    holder: dict[str, uvicorn.Server] = {}
    failed: list[bool] = []

    def stop_on_failure() -> None:
        failed.append(True)
        holder["server"].should_exit = True

    if resolved.spec.task.embeds:
        from conveyor.generative.embedding_app import app_for as embedding_app

        app = embedding_app(resolved, config.threads, stop_on_failure)
    else:
        from conveyor.generative.app import app_for

        payload_log = config.payload_log_config(drift_window=0)  # no live gauges: prompts are judged by the monitor
        app = app_for(resolved, config.slots, config.context_size, config.threads, stop_on_failure, payload_log)
    server = DrainingServer(_uvicorn_config(app, config))
    holder["server"] = server
    server.run()
    return 1 if failed else 0


def _serve_workers(config: ServeSettings) -> int:
    metrics_dir = tempfile.mkdtemp(prefix="conveyor-metrics-")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir
    os.environ[CONFIG_ENV] = config.model_dump_json(include=set(ServeSettings.model_fields))
    run(
        _uvicorn_config("conveyor.serving.server:app_from_env", config, factory=True, workers=config.workers),
        cleanup=lambda: shutil.rmtree(metrics_dir, ignore_errors=True),
    )
    return 0  # stopped by a signal, ``run`` ends the process by that signal first
