"""``conveyor serve``: serve a model directory or an ONNX file over HTTP.

Its options are the fields of :class:`~conveyor.serving.settings.ServeCommandSettings` (also the
``CONVEYOR_SERVE_*`` variables, conveyor.yaml's ``serve:`` keys and, but for the signing pin, the
image's entry point); a registry reference is resolved here, and the keys trusted.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from conveyor.cli.output import EXIT_PORT, EXIT_USAGE, ProgressBar, fail, handle_errors, stderr
from conveyor.cli.settings_options import given_on_command_line, with_settings
from conveyor.cli.trust import trust_from_options
from conveyor.errors import ConveyorError, PortInUse
from conveyor.ports import check_port_free
from conveyor.serving.settings import ServeCommandSettings

PROJECT_FILE = Path("conveyor.yaml")


@with_settings(ServeCommandSettings)
def serve(context: typer.Context, **options: Any) -> None:
    """Serve MODEL over HTTP: POST /predict, the Open Inference Protocol v2, /metrics.

    \b
    Every option is also a CONVEYOR_SERVE_* variable and a key of conveyor.yaml's serve:
    section (the command line wins, then the variable, then conveyor.yaml).

    \b
    curl -X POST -H "Content-Type: application/json" \\
         --data '["What a wonderful day"]' http://127.0.0.1:5000/predict
    {"positive":true}
    """
    from conveyor.serving.fetch import fetch_for_serving
    from conveyor.serving.model_choice import choose
    from conveyor.serving.server import serve as run_server

    with handle_errors():
        settings = ServeCommandSettings.load(given_on_command_line(context, options), PROJECT_FILE)
        settings.payload_log_config()  # a bad payload log is one line, before a download or a model load
        check_port_free(settings.host, settings.port)  # likewise a taken port
        keys = [Path(key) for key in settings.trusted_key] or None
        trusted, offered = trust_from_options(settings.require_signed, keys)
    choice = choose(settings.model)
    if choice.notice:
        stderr.print(f"note: {choice.notice}", highlight=False)
    model = choice.target
    if choice.from_registry:
        with handle_errors(), ProgressBar() as bar:
            served = fetch_for_serving(
                model, bar, on_notice=lambda text: stderr.print(f"warning: {text}"), trusted=trusted, offered=offered
            )
        settings = settings.model_copy(
            update={
                "model": str(served.model),
                "tokenizer": settings.tokenizer or (str(served.tokenizer) if served.tokenizer else None),
                "name": settings.name or served.version.name,
                "model_version": settings.model_version or str(served.version.version),
            }
        )
        # every file was hashed against the registry's digest just now, in the cache or on download
        signed = f", signed by trusted key {served.signed_by[:12]}" if served.signed_by else ""
        stderr.print(
            f"serving {served.version.ref} (sha256:{served.version.digest[:12]}, verified{signed}) "
            f"from {settings.model}"
        )
    elif trusted is not None:  # a downloaded folder: its .conveyor-signature.json must cover its files
        from conveyor.supply_chain.model_signature import verify_downloaded

        with handle_errors():
            key = verify_downloaded(Path(model), trusted)
        stderr.print(f"{model}: signed by trusted key {key[:12]}")
    try:
        code = run_server(settings)
    except ConveyorError as exc:
        raise fail(str(exc), EXIT_PORT if isinstance(exc, PortInUse) else EXIT_USAGE) from None
    raise typer.Exit(code)
