"""The options every signing or verifying command shares: the key that signs, the keys trusted."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from conveyor.supply_chain.keys import TrustedKey

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
TlsVerifyOption = Annotated[
    bool | None,
    typer.Option(
        "--tls-verify/--no-tls-verify",
        help="Verify the OCI registry's TLS [default: as the engine's registries.conf says].",
        show_default=False,
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


def trust_from_options(
    require_signed: bool, trusted_key: list[Path] | None
) -> tuple[list[TrustedKey] | None, list[TrustedKey] | None]:
    """(keys demanded, keys offered) from --require-signed and --trusted-key.

    --require-signed demands a signature by one of the keys (given, else $CONVEYOR_TRUSTED_KEYS).
    --trusted-key alone demands nothing: its keys are offered, and used where the registry's
    policy (model tag require-signed=true) asks for a signature."""
    from conveyor.supply_chain.keys import load_trusted_keys, require_trusted_keys

    if require_signed:
        return require_trusted_keys(trusted_key), None
    return None, (load_trusted_keys(trusted_key) if trusted_key else None)
