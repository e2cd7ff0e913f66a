"""What a Python pipeline step receives, and how it fails on purpose.

Kept apart from ``execute`` (which runs as ``__main__``) so that a step raising
``StepFailed`` raises the very class the executor catches.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any


class StepFailed(Exception):
    """A step's own verdict: fail with this message (no traceback)."""


@dataclass
class StepContext:
    params: dict[str, Any]
    args: dict[str, Any]  # the step's resolved `with:`
    run_id: str
    step: str
    artifacts: Path
    project: Path
    timeout: float = 3600.0  # the step's timeout: its process is killed after this many seconds
    options: Any = None  # a built-in step type's `with:` validated into its model (pipeline.step_args)

    def arg(self, name: str, default: Any = None, required: bool = False) -> Any:
        if name in self.args and self.args[name] is not None:
            return self.args[name]
        if required:
            raise StepFailed(f"step {self.step!r} needs `with: {{{name}: ...}}`")
        return default
