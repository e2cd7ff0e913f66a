"""``CONVEYOR_HOME`` (default ``~/.conveyor``): where the embedded registry, caches, runs and rollouts live."""

from __future__ import annotations

import os
from pathlib import Path


def conveyor_home() -> Path:
    home = Path(os.environ.get("CONVEYOR_HOME") or Path.home() / ".conveyor").expanduser()
    home.mkdir(parents=True, exist_ok=True)
    return home
