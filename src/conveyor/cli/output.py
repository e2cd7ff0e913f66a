"""Shared console output for the CLI: errors on stderr, never wrapped mid-path."""

from __future__ import annotations

import typer
from rich.console import Console

stderr = Console(stderr=True, soft_wrap=True)
stdout = Console(soft_wrap=True)

# Exit codes CI can rely on.
EXIT_FAILURE = 1  # the job ran and failed (a check, a load, a gate)
EXIT_USAGE = 2  # the user asked for something impossible (bad path, bad spec, bad option)


def fail(message: str, code: int = EXIT_USAGE) -> typer.Exit:
    """Print ``error: message`` and return the Exit to raise."""
    stderr.print(f"[red]error:[/red] {message}", highlight=False)
    return typer.Exit(code)
