"""Conveyor: continuous delivery for machine-learning models.

The Python API (``conveyor.api``) is importable from here without slowing the CLI down:
``from conveyor import open_registry, start_rollout, ProgressBar``.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

_API = {
    "open_registry": "conveyor.api",
    "start_rollout": "conveyor.api",
    "attach_rollout": "conveyor.api",
    "Rollout": "conveyor.api",
    "ProgressBar": "conveyor.progress",
    "Lineage": "conveyor.registry.records",
    "check_servable": "conveyor.serving.intake",
}
__all__ = ["__version__", *_API]


def __dir__() -> list[str]:
    """The lazy API names too, so ``dir(conveyor)`` and a notebook's completion find them."""
    return sorted({*globals(), *_API})


def __getattr__(name: str) -> Any:
    if name in _API:
        import importlib

        return getattr(importlib.import_module(_API[name]), name)
    raise AttributeError(f"module 'conveyor' has no attribute {name!r}")
