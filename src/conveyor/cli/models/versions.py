"""``conveyor models list|show|download|sign|alias|tag|archive|delete`` and the rest: registered versions."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from conveyor.cli.models.common import (
    JsonOption,
    RegistryOption,
    TokenOption,
    _pairs,
    _show_version,
    _version_table,
)
from conveyor.cli.output import ProgressBar, handle_errors, new_table, print_json, stdout
from conveyor.cli.trust import RequireSignedOption, TrustedKeyOption, trust_from_options
from conveyor.errors import InvalidInput
from conveyor.registry.config import open_registry
from conveyor.registry.refs import parse_ref
from conveyor.registry.storage_errors import NOTHING_CHANGED, outcome


def list_models(registry: RegistryOption = None, token: TokenOption = None, as_json: JsonOption = False) -> None:
    """List registered models."""
    with handle_errors():
        models = open_registry(registry, token).list_models()
    if as_json:
        print_json([m.model_dump(mode="json") for m in models])
        return
    table = new_table("models")
    for column in ("name", "latest", "versions", "aliases", "updated", "description"):
        table.add_column(column)
    for m in models:
        table.add_row(
            m.name,
            str(m.latest_version or "-"),
            str(m.version_count),
            " ".join(f"@{a.name}->{a.version}" + (" (protected)" if a.protected else "") for a in m.aliases),
            m.updated_at.strftime("%Y-%m-%d %H:%M"),
            m.description,
        )
    stdout.print(table)


def show(
    ref: Annotated[str, typer.Argument(help="name (the model and its versions), name:version or name@alias.")],
    all_versions: Annotated[bool, typer.Option("--all", help="Include archived versions.")] = False,
    registry: RegistryOption = None,
    token: TokenOption = None,
    as_json: JsonOption = False,
) -> None:
    """Show a model with its versions, or one version with its files and lineage."""
    with handle_errors():
        reg = open_registry(registry, token)
        parsed = parse_ref(ref)
        if parsed.version is None and parsed.alias is None:
            model = reg.get_model(parsed.name)
            versions = reg.list_versions(parsed.name, include_archived=all_versions)
            if as_json:
                print_json({**model.model_dump(mode="json"), "versions": [v.model_dump(mode="json") for v in versions]})
                return
            stdout.print(f"[bold]{model.name}[/bold]  {model.description}")
            if model.tags:
                stdout.print("tags: " + ", ".join(f"{k}={v}" for k, v in model.tags.items()))
            stdout.print(_version_table(versions, f"versions of {model.name}"))
            return
        version = reg.resolve(parsed)
    if as_json:
        print_json(version)
    else:
        _show_version(version)


def download(
    ref: Annotated[str, typer.Argument(help="name, name:version or name@alias.")],
    out: Annotated[Path, typer.Option("--output", "-o", help="Folder to write the files into.")],
    require_signed: RequireSignedOption = False,
    trusted_key: TrustedKeyOption = None,
    registry: RegistryOption = None,
    token: TokenOption = None,
    as_json: JsonOption = False,
) -> None:
    """Download a version's files into a folder; every file is checked against its sha256.

    A signed version's signature lands beside them as .conveyor-signature.json; with
    --require-signed nothing is written unless a trusted key signed exactly these files."""
    from conveyor.supply_chain.model_signature import download_signed

    with handle_errors(), ProgressBar(enabled=not as_json) as bar:
        trusted, offered = trust_from_options(require_signed, trusted_key)
        version, signed, key = download_signed(
            open_registry(registry, token), ref, out, trusted, progress=bar, offered=offered
        )
    if as_json:
        print_json(
            {"version": version.model_dump(mode="json"), "path": str(out.resolve()), "signed": signed, "signed_by": key}
        )
    else:
        note = f", signed by key {key[:12]}" if key else (", signature included" if signed else "")
        stdout.print(f"downloaded [bold]{version.ref}[/bold] to {out} ({len(version.files)} files, verified{note})")


def sign(
    ref: Annotated[str, typer.Argument(help="name, name:version or name@alias.")],
    key: Annotated[
        Path | None,
        typer.Option(help="Private key (conveyor keys generate) [default: the PEM in $CONVEYOR_SIGNING_KEY]."),
    ] = None,
    registry: RegistryOption = None,
    token: TokenOption = None,
    as_json: JsonOption = False,
) -> None:
    """Sign a version's files (OpenSSF model signing); the signature is stored with the version."""
    from conveyor.supply_chain.keys import load_signing_key
    from conveyor.supply_chain.model_signature import sign_version

    with handle_errors():
        signed = sign_version(open_registry(registry, token), ref, load_signing_key(key))
    if as_json:
        print_json({"ref": signed.ref, "key_id": signed.key_id, "signature": f"sha256:{signed.blob}"})
    else:
        stdout.print(f"signed [bold]{signed.ref}[/bold] with key {signed.key_id[:12]}")


def verify_signature(
    ref: Annotated[str, typer.Argument(help="name, name:version or name@alias.")],
    trusted_key: TrustedKeyOption = None,
    registry: RegistryOption = None,
    token: TokenOption = None,
    as_json: JsonOption = False,
) -> None:
    """Check that a trusted key signed exactly the files the registry stores for a version. Exit 1 when not.

    Every stored file is read and hashed again (not a cached copy): a byte changed in the
    registry's storage since signing is refused, naming the file."""
    from conveyor.supply_chain.keys import require_trusted_keys
    from conveyor.supply_chain.model_signature import verify_stored

    with handle_errors(), ProgressBar(enabled=not as_json) as bar:
        trusted = require_trusted_keys(trusted_key)
        version, key_id = verify_stored(open_registry(registry, token), ref, trusted, progress=bar)
    if as_json:
        print_json({"ref": version.ref, "verified": True, "signed_by": key_id})
    else:
        stdout.print(f"[green]ok[/green] {version.ref} is signed by trusted key {key_id[:12]}")


def _name_alias(text: str) -> tuple[str, str]:
    ref = parse_ref(text)
    if ref.alias is None:
        raise InvalidInput(f"expected NAME@ALIAS, got {text!r}")
    return ref.name, ref.alias


def alias_set(
    target: Annotated[str, typer.Argument(help="NAME@ALIAS, e.g. sentiment@production.")],
    version: Annotated[int, typer.Argument(help="The version the alias points at.", min=1)],
    force: Annotated[bool, typer.Option(help="Move a protected alias.")] = False,
    protect: Annotated[bool | None, typer.Option("--protect/--unprotect", help="Protect the alias.")] = None,
    registry: RegistryOption = None,
    token: TokenOption = None,
    as_json: JsonOption = False,
) -> None:
    """Point NAME@ALIAS at VERSION (creating the alias if needed)."""
    with handle_errors(), outcome(NOTHING_CHANGED):
        name, alias = _name_alias(target)
        result = open_registry(registry, token).set_alias(name, alias, version, force=force, protect=protect)
    if as_json:
        print_json(result)
    else:
        note = " (protected)" if result.protected else ""
        stdout.print(f"{name}@{alias} -> {name}:{result.version}{note}")


def alias_delete(
    target: Annotated[str, typer.Argument(help="NAME@ALIAS")],
    force: Annotated[bool, typer.Option(help="Delete a protected alias.")] = False,
    registry: RegistryOption = None,
    token: TokenOption = None,
    as_json: JsonOption = False,
) -> None:
    """Delete an alias."""
    with handle_errors(), outcome(NOTHING_CHANGED):
        name, alias = _name_alias(target)
        version = open_registry(registry, token).delete_alias(name, alias, force=force)
    if as_json:
        print_json({"name": name, "alias": alias, "version": version})
    else:
        stdout.print(f"deleted {name}@{alias} (was {name}:{version})")


def tag(
    ref: Annotated[str, typer.Argument(help="NAME (the model) or NAME:VERSION.")],
    tags: Annotated[list[str] | None, typer.Argument(help="key=value pairs to set.")] = None,
    unset: Annotated[list[str] | None, typer.Option(help="Tag keys to remove (repeatable).")] = None,
    registry: RegistryOption = None,
    token: TokenOption = None,
    as_json: JsonOption = False,
) -> None:
    """Set or remove tags of a model or a version."""
    with handle_errors(), outcome(NOTHING_CHANGED):
        parsed = parse_ref(ref)
        if parsed.alias is not None:
            raise InvalidInput("tag a model (NAME) or a version (NAME:VERSION), not an alias")
        result = open_registry(registry, token).set_tags(parsed.name, parsed.version, _pairs(tags, "tag"), unset or [])
    if as_json:
        print_json({"ref": ref, "tags": result})
    else:
        stdout.print(f"{ref}: " + (", ".join(f"{k}={v}" for k, v in result.items()) or "no tags"))


def _exact(ref: str) -> tuple[str, int]:
    parsed = parse_ref(ref)
    if parsed.version is None:
        raise InvalidInput(f"expected NAME:VERSION, got {ref!r}")
    return parsed.name, parsed.version


def _version_action(ref: str, action: str, registry: str | None, token: str | None, as_json: bool) -> None:
    with handle_errors(), outcome(NOTHING_CHANGED):
        name, version = _exact(ref)
        reg = open_registry(registry, token)
        result = reg.archive_version(name, version) if action == "archived" else reg.delete_version(name, version)
    if as_json:
        print_json(result)
    else:
        stdout.print(f"{action} {result.ref}")


def archive(
    ref: Annotated[str, typer.Argument(help="NAME:VERSION")],
    registry: RegistryOption = None,
    token: TokenOption = None,
    as_json: JsonOption = False,
) -> None:
    """Archive a version: hidden from 'latest' and lists, kept for lineage. Refused while an alias points at it."""
    _version_action(ref, "archived", registry, token, as_json)


def delete(
    ref: Annotated[str, typer.Argument(help="NAME:VERSION")],
    registry: RegistryOption = None,
    token: TokenOption = None,
    as_json: JsonOption = False,
) -> None:
    """Delete a version's record. Refused while an alias points at it."""
    _version_action(ref, "deleted", registry, token, as_json)
