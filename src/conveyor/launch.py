"""Starting Conveyor itself as a subprocess: one spelling, the same interpreter.

Rollout backends, the servers ``verify`` starts for its checks and the background rollout
controller all run ``python -m conveyor ...`` with the interpreter running now, so a venv's
Conveyor starts the same venv's Conveyor whatever ``PATH`` says.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import IO


def conveyor_argv(*args: str) -> list[str]:
    """The command line of ``conveyor ARGS...`` in this environment."""
    return [sys.executable, "-m", "conveyor", *args]


def spawn_detached(argv: list[str], log: Path | IO[bytes]) -> subprocess.Popen[bytes]:
    """Start ``argv`` in its own session (it outlives us), its output appended to ``log``."""
    out = open(log, "ab") if isinstance(log, Path) else log  # noqa: SIM115 (the child keeps it)
    try:
        return subprocess.Popen(
            argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True
        )
    finally:
        if isinstance(log, Path):
            out.close()
