"""Where extensions come from: Conveyor's own modules and installed plugin packages, found one way.

Checks, pipeline step types, analysis metrics and container engines are each registered by a
decorator when their module is imported (``@check``, ``@step_type``, ``@metric``, ``@engine``);
model converters and tabular frameworks are modules with the same few functions each, listed by
:func:`modules`.  Conveyor's own live one module each in a package; a plugin package adds more by
naming its modules under an entry-point group in its ``pyproject.toml``, as pytest and MLServer
plugins do::

    [project.entry-points."conveyor.step_types"]
    notify = "acme_conveyor.notify"

:func:`load` imports both, once per kind, when something first reads that kind's table, never at
import time.  A plugin that fails to import costs one warning line (its package, entry point and
the cause) and is remembered: everything else works, and only a command that needs that kind of
extension and does not find the one it asked for fails, with :func:`missing`'s error naming the
same line.
"""

from __future__ import annotations

import importlib
import logging
import pkgutil
from dataclasses import dataclass
from importlib.metadata import EntryPoint, entry_points
from types import ModuleType
from typing import Literal

from conveyor.errors import PluginFailed

Kind = Literal["checks", "step_types", "metrics", "engines", "converters", "frameworks"]

log = logging.getLogger("conveyor.plugins")


@dataclass(frozen=True)
class ExtensionPoint:
    builtin_package: str  # every module in it is imported
    group: str  # the entry-point group plugin packages name their modules under


EXTENSION_POINTS: dict[Kind, ExtensionPoint] = {
    "checks": ExtensionPoint("conveyor.verify.builtins", "conveyor.checks"),
    "step_types": ExtensionPoint("conveyor.pipeline.steps", "conveyor.step_types"),
    "metrics": ExtensionPoint("conveyor.rollout.analysis.metrics", "conveyor.metrics"),
    "engines": ExtensionPoint("conveyor.engines", "conveyor.engines"),
    "converters": ExtensionPoint("conveyor.convert.converters", "conveyor.converters"),
    "frameworks": ExtensionPoint("conveyor.convert.frameworks", "conveyor.frameworks"),
}


@dataclass(frozen=True)
class BrokenPlugin:
    """An entry point whose module could not be imported, and why."""

    kind: Kind
    name: str  # the entry point's name
    package: str  # the distribution that declares it
    module: str  # what it names
    cause: str

    @property
    def line(self) -> str:
        entry_point = f"{EXTENSION_POINTS[self.kind].group} entry point {self.module}"
        return f"the plugin {self.name!r} of {self.package} ({entry_point}) failed to load: {self.cause}"


_loaded: set[Kind] = set()
_modules: dict[Kind, list[ModuleType]] = {kind: [] for kind in EXTENSION_POINTS}
_plugin_modules: dict[Kind, list[str]] = {kind: [] for kind in EXTENSION_POINTS}
_broken: dict[Kind, list[BrokenPlugin]] = {kind: [] for kind in EXTENSION_POINTS}


def load(kind: Kind) -> None:
    """Import Conveyor's own modules of ``kind`` and every installed plugin's (once); never raises
    for a plugin: one that fails to import is logged in one warning line and kept in :func:`broken`."""
    if kind in _loaded:
        return
    point = EXTENSION_POINTS[kind]
    package = importlib.import_module(point.builtin_package)
    found = [
        importlib.import_module(f"{point.builtin_package}.{module.name}")
        for module in pkgutil.iter_modules(package.__path__)
    ]
    _modules[kind] = found
    _loaded.add(kind)  # before the plugins: a plugin that imports Conveyor's tables does not recurse
    for entry in entry_points(group=point.group):
        try:
            module = entry.load()
        except Exception as exc:  # a plugin's import can fail in any way; it must not stop Conveyor
            _record_broken(kind, entry, exc)
            continue
        _plugin_modules[kind].append(entry.module)
        if isinstance(module, ModuleType):
            found.append(module)


def _record_broken(kind: Kind, entry: EntryPoint, exc: Exception) -> None:
    package = entry.dist.name if entry.dist is not None else "an installed package"
    broken = BrokenPlugin(kind, entry.name, package, entry.value, f"{type(exc).__name__}: {exc}")
    _broken[kind].append(broken)
    log.warning("warning: %s", broken.line)


def modules(kind: Kind) -> list[ModuleType]:
    """The modules of ``kind``: Conveyor's own (in name order), then the plugins' that loaded."""
    load(kind)
    return list(_modules[kind])


def broken(kind: Kind) -> list[BrokenPlugin]:
    """The plugins of ``kind`` that failed to load."""
    load(kind)
    return list(_broken[kind])


def missing(kind: Kind, name: str = "") -> PluginFailed | None:
    """The error to raise when ``name`` is not among the extensions of ``kind`` and a broken plugin
    may be the one that would have registered it (the plugin whose entry point is called ``name``,
    else every broken one of the kind); None when every plugin of the kind loaded."""
    failed = broken(kind)
    named = [b for b in failed if b.name == name] or failed
    return PluginFailed("; ".join(b.line for b in named)) if named else None


def from_plugin(kind: Kind, module: str) -> bool:
    """Whether ``module`` belongs to an installed plugin of ``kind`` (loaded by :func:`load`)."""
    load(kind)
    return any(module == m or module.startswith(m + ".") for m in _plugin_modules[kind])
