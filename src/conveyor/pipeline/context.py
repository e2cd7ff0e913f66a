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

    def arg(self, name: str, default: Any = None, required: bool = False) -> Any:
        if name in self.args and self.args[name] is not None:
            return self.args[name]
        if required:
            raise StepFailed(f"step {self.step!r} needs `with: {{{name}: ...}}`")
        return default

    def flag(self, name: str) -> bool | None:
        """A yes/no argument that may be unset (None): true/false, or their strings from ``${{ }}``."""
        value = self.arg(name)
        if value is None or isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in ("true", "yes", "1", "on"):
            return True
        if text in ("false", "no", "0", "off"):
            return False
        if text == "":
            return None
        raise StepFailed(f"step {self.step!r}: `with: {{{name}: {value!r}}}` must be true or false")
