"""A transfer progress bar on stderr, for registering and downloading models.

It implements the registry's ``Progress`` protocol, so the CLI and the Python API show the
same bar; it stays quiet when stderr is not a terminal (CI logs) unless asked otherwise.
"""

from __future__ import annotations

from typing import Any


class ProgressBar:
    """A rich transfer bar: ``with ProgressBar() as bar: registry.register(path, name, progress=bar)``."""

    def __init__(self, enabled: bool | None = None, console: Any = None) -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
            TransferSpeedColumn,
        )

        console = console or Console(stderr=True, soft_wrap=True)
        self._progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            DownloadColumn(),
            TransferSpeedColumn(),
            TimeRemainingColumn(),
            console=console,
            transient=True,
            disable=not (console.is_terminal if enabled is None else enabled),
        )
        self._task: Any = None

    def __enter__(self) -> ProgressBar:
        self._progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._progress.stop()

    def start(self, description: str, total: int) -> None:
        if self._task is not None:
            self._progress.remove_task(self._task)
        self._task = self._progress.add_task(description, total=total)

    def advance(self, amount: int) -> None:
        if self._task is not None:
            self._progress.advance(self._task, amount)
