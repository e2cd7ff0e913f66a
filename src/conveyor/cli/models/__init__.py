"""``conveyor models``: register, import, show, diff, download, alias, tag, archive, delete, optimize, challenge.

The commands live one concern per module (``register``, ``versions``, ``optimize``); this table
names them once, in the order ``conveyor models --help`` lists them.
"""

from __future__ import annotations

import typer

from conveyor.cli.models import challenge, diff, importing, optimize, register, versions
from conveyor.cli.models.common import JsonOption, RegistryOption, TokenOption

__all__ = ["JsonOption", "RegistryOption", "TokenOption", "app"]

app = typer.Typer(
    rich_markup_mode=None,
    help="Model versions in the registry (CONVEYOR_REGISTRY, CONVEYOR_TOKEN).",
    no_args_is_help=True,
)
alias_app = typer.Typer(
    rich_markup_mode=None, help="Point aliases like name@production at versions.", no_args_is_help=True
)

app.command("register")(register.register)
app.command("import", no_args_is_help=True)(importing.import_model)
app.command("list")(versions.list_models)
app.command("show")(versions.show)
app.command("diff", no_args_is_help=True)(diff.diff)
app.command("download")(versions.download)
app.command("sign")(versions.sign)
app.command("verify-signature")(versions.verify_signature)
app.add_typer(alias_app, name="alias")
alias_app.command("set")(versions.alias_set)
alias_app.command("delete")(versions.alias_delete)
app.command("tag")(versions.tag)
app.command("archive")(versions.archive)
app.command("delete")(versions.delete)
app.command("optimize")(optimize.optimize)
app.command("challenge", no_args_is_help=True)(challenge.challenge)
