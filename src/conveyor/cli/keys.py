"""``conveyor keys``: make the key pair that signs models, provenance and images."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from conveyor.cli.output import handle_errors, print_json, stdout

app = typer.Typer(rich_markup_mode=None, help="Signing keys for the supply chain.", no_args_is_help=True)


@app.command("generate")
def generate(
    prefix: Annotated[Path, typer.Argument(help="Write PREFIX.key (private, mode 0600) and PREFIX.pub.")],
    key_type: Annotated[
        str, typer.Option("--type", help="ecdsa-p256 (signs models, provenance, images) or ed25519 (not models).")
    ] = "ecdsa-p256",
    force: Annotated[bool, typer.Option(help="Overwrite existing key files.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")] = False,
) -> None:
    """Generate a signing key pair. Keep PREFIX.key secret (a CI secret: CONVEYOR_SIGNING_KEY); share PREFIX.pub."""
    from conveyor.supply_chain.keys import generate as make
    from conveyor.supply_chain.keys import load_trusted_keys

    with handle_errors():
        private, public = make(prefix, key_type, force)
        key_id = load_trusted_keys([public])[0].key_id
    if as_json:
        print_json({"private_key": str(private), "public_key": str(public), "key_id": key_id, "type": key_type})
        return
    stdout.print(f"wrote {private} (secret) and {public}; key id {key_id[:12]}", highlight=False)
