"""Where extensions come from: Conveyor's own modules and installed plugin packages, found one way.

Checks, pipeline step types, analysis metrics and container engines are each registered by a
decorator when their module is imported (``@check``, ``@step_type``, ``@metric``, ``@engine``).
Conveyor's own live one module each in a package; a plugin package adds more by naming its
modules under an entry-point group in its ``pyproject.toml``, as pytest and MLServer plugins do::

    [project.entry-points."conveyor.step_types"]
    notify = "acme_conveyor.notify"

:func:`load` imports both, once per kind, before anything reads that kind's table.
"""

from __future__ import annotations

import importlib
import pkgutil
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import Literal

from conveyor.errors import ConveyorError

Kind = Literal["checks", "step_types", "metrics", "engines"]


@dataclass(frozen=True)
class ExtensionPoint:
    builtin_package: str  # every module in it is imported
    group: str  # the entry-point group plugin packages name their modules under


EXTENSION_POINTS: dict[Kind, ExtensionPoint] = {
    "checks": ExtensionPoint("conveyor.verify.builtins", "conveyor.checks"),
    "step_types": ExtensionPoint("conveyor.pipeline.steps", "conveyor.step_types"),
    "metrics": ExtensionPoint("conveyor.rollout.analysis.metrics", "conveyor.metrics"),
    "engines": ExtensionPoint("conveyor.engines", "conveyor.engines"),
}
_loaded: set[Kind] = set()
_plugin_modules: dict[Kind, list[str]] = {kind: [] for kind in EXTENSION_POINTS}


def load(kind: Kind) -> None:
    """Import Conveyor's own modules of ``kind`` and every installed plugin's (once)."""
    if kind in _loaded:
        return
    point = EXTENSION_POINTS[kind]
    package = importlib.import_module(point.builtin_package)
    for module in pkgutil.iter_modules(package.__path__):
        importlib.import_module(f"{point.builtin_package}.{module.name}")
    _loaded.add(kind)  # before the plugins: a plugin that imports Conveyor's tables does not recurse
    for entry in entry_points(group=point.group):
        try:
            entry.load()
            _plugin_modules[kind].append(entry.module)
        except Exception as exc:
            _loaded.discard(kind)
            dist = entry.dist.name if entry.dist is not None else "an installed package"
            raise ConveyorError(
                f"the plugin {entry.name!r} of {dist} ({point.group} entry point {entry.value}) "
                f"failed to load: {type(exc).__name__}: {exc}"
            ) from None


def from_plugin(kind: Kind, module: str) -> bool:
    """Whether ``module`` belongs to an installed plugin of ``kind`` (loaded by :func:`load`)."""
    load(kind)
    return any(module == m or module.startswith(m + ".") for m in _plugin_modules[kind])
