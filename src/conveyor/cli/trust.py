"""The options every signing or verifying command shares: the key that signs, the keys trusted."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

RequireSignedOption = Annotated[
    bool,
    typer.Option(
        "--require-signed",
        envvar="CONVEYOR_REQUIRE_SIGNED",
        help="Refuse a version no trusted key signed (--trusted-key).",
    ),
]
TrustedKeyOption = Annotated[
    list[Path] | None,
    typer.Option(
        "--trusted-key",
        metavar="KEY.pub",
        help="Public key to trust (repeatable) [default: files in $CONVEYOR_TRUSTED_KEYS].",
    ),
]
SignOption = Annotated[
    Path | None,
    typer.Option(
        "--sign",
        help="Private key (conveyor keys generate) to sign the provenance and the image with "
        "[default: the PEM in $CONVEYOR_SIGNING_KEY, if set; else unsigned].",
        show_default=False,
    ),
]
