"""Entry point of the ``conveyor`` command."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from conveyor import __version__
from conveyor.cli import ci, init, keys, models, monitor, package, pipeline, registry, rollout, serve, ui, verify
from conveyor.cli import router as router_cli
from conveyor.cli.output import EXIT_FAILURE

app = typer.Typer(
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


app.command("serve", no_args_is_help=True)(serve.serve)
app.command("verify")(verify.verify)
app.command("init")(init.init)
app.command("package", no_args_is_help=True)(package.package)
app.command("build", no_args_is_help=True)(package.build)
app.command("smoke", no_args_is_help=True)(package.smoke)
app.command("push", no_args_is_help=True)(package.push_image)
app.command("base-image")(package.base_image)
app.command("monitor", no_args_is_help=True)(monitor.monitor)
app.add_typer(models.app, name="models")
app.add_typer(keys.app, name="keys")
app.add_typer(registry.app, name="registry")
app.add_typer(pipeline.app, name="pipeline")
app.add_typer(ci.app, name="ci")
app.command("router")(router_cli.router)
app.add_typer(rollout.app, name="rollout")
app.command("ui")(ui.ui)


@app.command("version")
def version() -> None:
    """Print Conveyor's version."""
    typer.echo(__version__)


def main() -> None:
    """The ``conveyor`` command: the app, with a last net for lost connections.

    Every command turns Conveyor's own errors into one line; a connection that drops somewhere we
    did not foresee (a server killed mid-transfer) gets one line too, never a stack.
    """
    try:
        app()
    except (ConnectionError, TimeoutError) as exc:
        _one_line(f"the connection was lost: {exc}")
    except Exception as exc:
        httpx = sys.modules.get("httpx")
        if httpx is not None and isinstance(exc, httpx.TransportError):
            _one_line(f"the connection was lost: {exc or type(exc).__name__}")
        raise


def _one_line(message: str) -> None:
    sys.stderr.write(f"error: {message}\n")
    raise SystemExit(EXIT_FAILURE)


if __name__ == "__main__":
    main()
