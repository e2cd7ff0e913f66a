"""Entry point of the ``conveyor`` command."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Iterator
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from conveyor import __version__
from conveyor.cli import ci, init, keys, package, pipeline, verify
from conveyor.cli.output import EXIT_FAILURE, exit_code
from conveyor.errors import ConveyorError

#: commands whose modules read a settings model (pydantic): imported when one of them is looked up,
#: so every other command starts without pydantic; name -> (module:attribute, a group?, no_args_is_help)
LAZY: dict[str, tuple[str, bool, bool]] = {
    "serve": ("conveyor.cli.serve:serve", False, True),
    "registry": ("conveyor.cli.registry:app", True, False),
    "router": ("conveyor.cli.router:router", False, False),
    "rollout": ("conveyor.cli.rollout:app", True, False),
    "ui": ("conveyor.cli.ui:ui", False, False),
    # the monitoring commands: `conveyor monitor` is run on a schedule, its start-up counts
    "monitor": ("conveyor.cli.monitor:monitor", False, True),
    "models": ("conveyor.cli.models:app", True, False),
}


def _load(name: str) -> Any:
    """The click command of a LAZY entry, built from its module."""
    target, group, no_args_is_help = LAZY[name]
    module, _, attribute = target.partition(":")
    found = getattr(importlib.import_module(module), attribute)
    if not group:
        single = typer.Typer(rich_markup_mode=None, add_completion=False, pretty_exceptions_enable=False)
        single.command(name, no_args_is_help=no_args_is_help)(found)
        found = single
    command = typer.main.get_command(found)
    command.name = name
    return command


class _Commands(dict[str, Any]):
    """The root group's commands: LAZY ones are built on first lookup (click reads them with get,
    [], items and values, in the order they were declared)."""

    def _built(self, name: str) -> Any:
        value = dict.__getitem__(self, name)
        if value is None:
            value = _load(name)
            dict.__setitem__(self, name, value)
        return value

    def __getitem__(self, name: str) -> Any:
        return self._built(name)

    def get(self, name: str, default: Any = None) -> Any:
        return self._built(name) if name in self else default

    def items(self) -> Iterator[tuple[str, Any]]:  # type: ignore[override]
        return iter([(name, self._built(name)) for name in self])

    def values(self) -> Iterator[Any]:  # type: ignore[override]
        return iter([self._built(name) for name in self])


class _Root(TyperGroup):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        order = [*self.commands, *LAZY]
        commands = _Commands()
        for name in sorted(order, key=_DECLARED.index):
            dict.__setitem__(commands, name, self.commands.get(name))
        self.commands = commands


app = typer.Typer(
    cls=_Root,
    rich_markup_mode=None,
    name="conveyor",
    help="Continuous delivery for machine-learning models.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"conveyor {__version__}")
        raise typer.Exit()


@app.callback()
def _options(
    show_version: Annotated[
        bool,
        typer.Option("--version", callback=_print_version, is_eager=True, help="Print Conveyor's version and exit."),
    ] = False,
) -> None:
    """Continuous delivery for machine-learning models."""


app.command("verify")(verify.verify)
app.command("init")(init.init)
app.command("package", no_args_is_help=True)(package.package)
app.command("build", no_args_is_help=True)(package.build)
app.command("smoke", no_args_is_help=True)(package.smoke)
app.command("push", no_args_is_help=True)(package.push_image)
app.command("base-image")(package.base_image)
app.add_typer(keys.app, name="keys")
app.add_typer(pipeline.app, name="pipeline")
app.add_typer(ci.app, name="ci")


#: the order `conveyor --help` lists the commands in (commands, then groups, as Typer lists them)
_DECLARED = [
    "serve", "verify", "init", "package", "build", "smoke", "push", "base-image", "monitor", "router", "ui",
    "version", "models", "keys", "registry", "pipeline", "ci", "rollout",
]  # fmt: skip


@app.command("version")
def version() -> None:
    """Print Conveyor's version."""
    typer.echo(__version__)


def main() -> None:
    """The ``conveyor`` command: the app, with a last net for lost connections and missing extras.

    Every command turns Conveyor's own errors into one line; a connection that drops somewhere we
    did not foresee (a server killed mid-transfer) gets one line too, never a stack.
    """
    try:
        app()
    except ConveyorError as exc:  # one a command met before its own handler, e.g. an extra missing at an import
        _one_line(str(exc), exit_code(exc))
    except (ConnectionError, TimeoutError) as exc:
        _one_line(f"the connection was lost: {exc}")
    except Exception as exc:
        httpx = sys.modules.get("httpx")
        if httpx is not None and isinstance(exc, httpx.TransportError):
            _one_line(f"the connection was lost: {exc or type(exc).__name__}")
        raise


def _one_line(message: str, code: int = EXIT_FAILURE) -> None:
    sys.stderr.write(f"error: {message}\n")
    raise SystemExit(code)


if __name__ == "__main__":
    main()
