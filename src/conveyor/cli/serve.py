"""``conveyor serve``: serve a model directory or an ONNX file over HTTP."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Annotated

import typer

from conveyor.cli.output import EXIT_PORT, EXIT_USAGE, ProgressBar, fail, handle_errors, stderr
from conveyor.cli.payload_options import (
    LogDrop,
    LogHash,
    LogMaxRecordKib,
    LogPayloads,
    LogRotateMib,
    LogRotateSeconds,
    LogSample,
    payload_log_settings,
)
from conveyor.cli.trust import RequireSignedOption, TrustedKeyOption, trust_from_options
from conveyor.errors import ConveyorError, PortInUse
from conveyor.ports import check_port_free
from conveyor.registry.refs import looks_like_ref


def serve(
    model: Annotated[
        str,
        typer.Argument(
            help="A model directory (with model.yaml), an .onnx file, or a registry reference "
            "(name, name:version, name@alias)."
        ),
    ],
    tokenizer: Annotated[
        str | None, typer.Option(help="tokenizer.json for a bare .onnx file (without it: raw tensors only).")
    ] = None,
    name: Annotated[str | None, typer.Option(help="Serve under this model name.")] = None,
    model_version: Annotated[str | None, typer.Option("--model-version", help="Serve as this version.")] = None,
    host: Annotated[str, typer.Option(help="Address to bind; 0.0.0.0 for every interface.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 5000,
    workers: Annotated[int, typer.Option(min=1, help="Server processes sharing the port.")] = 1,
    threads: Annotated[
        int | None,
        typer.Option(min=1, help="onnxruntime intra-op threads per worker [default: cores / workers]."),
    ] = None,
    device: Annotated[str, typer.Option(help="cpu, or cuda (needs onnxruntime-gpu and a GPU).")] = "cpu",
    max_batch_size: Annotated[int, typer.Option(min=1, help="Most texts in one inference batch.")] = 32,
    max_batch_wait_ms: Annotated[
        float,
        typer.Option(min=0, help="Longest wait for more requests before a batch starts (0: never wait)."),
    ] = 0.0,
    parallel_batches: Annotated[
        int,
        typer.Option(min=1, help="Batches computed at once, each on its own thread (pair with --threads)."),
    ] = 1,
    max_body_bytes: Annotated[int, typer.Option(min=1, help="Largest request body accepted.")] = 1_000_000,
    max_items: Annotated[int, typer.Option(min=1, help="Most texts in one request.")] = 256,
    graceful_timeout: Annotated[
        float, typer.Option(help="Seconds to let in-flight requests finish on SIGTERM.")
    ] = 30.0,
    log_level: Annotated[str, typer.Option(help="debug, info, warning or error.")] = "info",
    access_log: Annotated[bool, typer.Option(help="Log every request.")] = False,
    log_payloads: LogPayloads = None,
    log_sample: LogSample = 0.1,
    log_drop: LogDrop = None,
    log_hash: LogHash = None,
    log_max_record_kib: LogMaxRecordKib = 64,
    log_rotate_mib: LogRotateMib = 16,
    log_rotate_seconds: LogRotateSeconds = 300.0,
    drift_window: Annotated[
        int,
        typer.Option(
            min=0,
            help="With --log-payloads and a version profiled at registration: judge each window of this many "
            "logged items for drift, as gauges on /metrics (0: off).",
        ),
    ] = 500,
    require_signed: RequireSignedOption = False,
    trusted_key: TrustedKeyOption = None,
) -> None:
    """Serve MODEL over HTTP: POST /predict, the Open Inference Protocol v2, /metrics.

    \b
    curl -X POST -H "Content-Type: application/json" \\
         --data '["What a wonderful day"]' http://127.0.0.1:5000/predict
    {"positive":true}
    """
    from conveyor.serving.fetch import fetch_for_serving
    from conveyor.serving.server import ServeConfig
    from conveyor.serving.server import serve as run_server

    with handle_errors():
        check_port_free(host, port)  # before a download or a model load: a taken port is one line
        trusted, offered = trust_from_options(require_signed, trusted_key)
    if not Path(model).exists() and looks_like_ref(model):
        with handle_errors(), ProgressBar() as bar:
            served = fetch_for_serving(
                model, bar, on_notice=lambda text: stderr.print(f"warning: {text}"), trusted=trusted, offered=offered
            )
        model = str(served.model)
        tokenizer = tokenizer or (str(served.tokenizer) if served.tokenizer else None)
        name = name or served.version.name
        model_version = model_version or str(served.version.version)
        # every file was hashed against the registry's digest just now, in the cache or on download
        signed = f", signed by trusted key {served.signed_by[:12]}" if served.signed_by else ""
        stderr.print(
            f"serving {served.version.ref} (sha256:{served.version.digest[:12]}, verified{signed}) from {model}"
        )
    elif trusted is not None:  # a downloaded folder: its .conveyor-signature.json must cover its files
        from conveyor.supply_chain.model_signature import verify_downloaded

        with handle_errors():
            key = verify_downloaded(Path(model), trusted)
        stderr.print(f"{model}: signed by trusted key {key[:12]}")
    settings = payload_log_settings(
        log_payloads,
        sample=log_sample,
        drop=log_drop,
        hash=log_hash,
        max_record_kib=log_max_record_kib,
        rotate_mib=log_rotate_mib,
        rotate_seconds=log_rotate_seconds,
        drift_window=drift_window,
    )
    config = ServeConfig(
        model=model,
        tokenizer=tokenizer,
        name=name,
        version=model_version,
        host=host,
        port=port,
        workers=workers,
        threads=threads,
        device=device,
        max_batch_size=max_batch_size,
        max_batch_wait_ms=max_batch_wait_ms,
        parallel_batches=parallel_batches,
        max_body_bytes=max_body_bytes,
        max_items=max_items,
        graceful_timeout=graceful_timeout,
        log_level=log_level.lower(),
        access_log=access_log,
        payload_log=None if settings is None else asdict(settings),
    )
    try:
        code = run_server(config)
    except ConveyorError as exc:
        raise fail(str(exc), EXIT_PORT if isinstance(exc, PortInUse) else EXIT_USAGE) from None
    raise typer.Exit(code)
