"""The payload log's options, declared once for ``conveyor serve`` and ``conveyor router``.

Both log the same records to the same layout (``DEST/<model>/<version>/payloads-*.jsonl``), so
``conveyor monitor`` reads either; the options, their defaults and their checks are one set.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer

from conveyor.cli.output import EXIT_USAGE, fail

if TYPE_CHECKING:
    from conveyor.serving.payloads import PayloadLogConfig

LogPayloads = Annotated[
    str | None,
    typer.Option(
        "--log-payloads",
        metavar="DEST",
        help="Log a sample of requests and answers as JSON Lines under DEST (a folder or s3://bucket/prefix).",
    ),
]
LogSample = Annotated[float, typer.Option(min=0.0, max=1.0, help="With --log-payloads: the share of requests logged.")]
LogDrop = Annotated[
    list[str] | None,
    typer.Option(help="An input field never logged (a column; `text` for a text model's input). Repeatable."),
]
LogHash = Annotated[
    list[str] | None,
    typer.Option(help="An input field logged as a keyed hash ($CONVEYOR_PAYLOAD_HASH_KEY). Repeatable."),
]
LogMaxRecordKib = Annotated[int, typer.Option(min=1, help="A larger record keeps its answers and loses its inputs.")]
LogRotateMib = Annotated[int, typer.Option(min=1, help="Start a new payload file after this many MiB.")]
LogRotateSeconds = Annotated[
    float, typer.Option(min=1, help="... or after this many seconds (a reader sees whole files only).")
]


def payload_log_settings(
    destination: str | None,
    *,
    sample: float,
    drop: list[str] | None,
    hash: list[str] | None,
    max_record_kib: int,
    rotate_mib: int,
    rotate_seconds: float,
    **more: Any,
) -> PayloadLogConfig | None:
    """The payload log's settings, checked before the server starts (a bad one is one line, exit 2);
    None when no log is asked for."""
    from conveyor.serving.payloads import PayloadLogConfig

    if not destination:
        return None
    if destination.startswith("s3://"):
        try:
            import boto3  # noqa: F401
        except ImportError:
            raise fail("--log-payloads s3://... needs boto3 (pip install boto3)", EXIT_USAGE) from None
    try:
        return PayloadLogConfig(
            destination,
            sample=sample,
            drop=tuple(drop or ()),
            hash=tuple(hash or ()),
            max_record_bytes=max_record_kib * 1024,
            rotate_bytes=rotate_mib * 1024 * 1024,
            rotate_seconds=rotate_seconds,
            **more,
        )
    except ValueError as exc:
        raise fail(str(exc), EXIT_USAGE) from None
