"""Shared console output for the CLI: errors, tables, JSON, progress bars, exit codes."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import typer

if TYPE_CHECKING:
    from rich.table import Table

from conveyor.errors import (
    ChainBroken,
    ClientError,
    Conflict,
    ConveyorError,
    MissingExtra,
    NotFound,
    PortInUse,
    StorageError,
    Unauthorized,
)


class _Console:
    """A rich Console made on first use: ``conveyor --help`` and ``version`` never import rich."""

    def __init__(self, **options: Any) -> None:
        self._options = options
        self._console: Any = None

    def rich(self) -> Any:
        """The rich Console itself, for rich objects that take ``console=``."""
        if self._console is None:
            from rich.console import Console

            self._console = Console(**self._options)
        return self._console

    def __getattr__(self, name: str) -> Any:
        return getattr(self.rich(), name)


stderr: Any = _Console(stderr=True, soft_wrap=True)
stdout: Any = _Console(soft_wrap=True)

# Exit codes CI can rely on.
EXIT_FAILURE = 1  # the job ran and failed (a check, a load, a gate, a corrupt blob)
EXIT_USAGE = 2  # the request was invalid (bad path, bad spec, bad name or option)
EXIT_AUTH = 3  # missing, invalid or insufficient credentials
EXIT_NOT_FOUND = 4  # the model, version, alias or file does not exist
EXIT_CONFLICT = 5  # refused because of the current state (protected alias, alias on an archived version)
EXIT_PORT = 6  # a server cannot listen where it was asked: the port is taken (or the address is not here)
EXIT_STORAGE = 7  # the registry's storage cannot take a write (disk full, read-only, database or store unreachable)


def fail(message: str, code: int = EXIT_USAGE) -> typer.Exit:
    """Print ``error: message`` and return the Exit to raise (the message as written: ``[extra]`` is no markup)."""
    from rich.markup import escape

    stderr.print(f"[red]error:[/red] {escape(message)}", highlight=False)
    return typer.Exit(code)


def exit_code(exc: ConveyorError) -> int:
    """The exit code for each kind of error (the one place the CLI maps them)."""
    if isinstance(exc, PortInUse):
        return EXIT_PORT
    if isinstance(exc, StorageError):
        return EXIT_STORAGE
    if isinstance(exc, ChainBroken):  # a supply-chain check failed, like any failed check
        return EXIT_FAILURE
    if isinstance(exc, Unauthorized) or (isinstance(exc, ClientError) and exc.status == 403):
        return EXIT_AUTH
    if isinstance(exc, NotFound):
        return EXIT_NOT_FOUND
    if isinstance(exc, Conflict):
        return EXIT_CONFLICT
    if isinstance(exc, ClientError | MissingExtra):  # a missing extra: the pip command is in the message
        return EXIT_USAGE
    return EXIT_FAILURE


@contextmanager
def handle_errors() -> Iterator[None]:
    """Turn Conveyor's errors into a one-line message and a meaningful exit code."""
    try:
        yield
    except ConveyorError as exc:
        raise fail(str(exc), exit_code(exc)) from None


def new_table(title: str) -> Table:
    """A rich Table (rich is imported when the first table is drawn, not at start-up)."""
    from rich.table import Table

    return Table(title=title)


def _is_model(data: Any) -> bool:
    return hasattr(data, "model_dump_json")  # a pydantic model, without importing pydantic here


def print_json(data: Any) -> None:
    if _is_model(data):
        text = data.model_dump_json(indent=2)
    elif isinstance(data, list) and data and _is_model(data[0]):
        text = json.dumps([item.model_dump(mode="json") for item in data], indent=2)
    else:
        text = json.dumps(data, indent=2, default=str)
    sys.stdout.write(text + "\n")


def print_json_document(data: Any) -> None:
    """A large plain document (a monitoring pass's windows) as indented JSON, written by orjson:
    ten times faster than ``json`` on hundreds of windows; numpy numbers as numbers."""
    import orjson

    options = orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS | orjson.OPT_SERIALIZE_NUMPY
    sys.stdout.write(orjson.dumps(data, default=str, option=options).decode() + "\n")


def ProgressBar(enabled: bool = True) -> Any:
    """The registry transfer bar (``conveyor.progress``) on the CLI's stderr console."""
    from conveyor.progress import ProgressBar as Bar

    return Bar(enabled=enabled, console=stderr.rich())
