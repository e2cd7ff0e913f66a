"""Container engines, one module each: what Conveyor runs to build, inspect, push and run images.

Every module in this package (and a plugin's ``conveyor.engines`` entry points, see
:mod:`conveyor.plugins`) registers one :class:`~conveyor.engines.base.Engine` with ``@engine``;
:func:`all_engines` is the one list of them, in the order they are preferred when the user names
none.  ``conveyor build --builder``, the build and push steps, image verification and rollouts of
``--image`` all find their engine here, so adding one is one new module plus its test.
"""

from __future__ import annotations

import shutil

from conveyor.engines.base import Engine, registered
from conveyor.errors import ConveyorError, InvalidInput

__all__ = ["Engine", "all_engines", "builder", "get_engine", "runner"]


def all_engines() -> list[Engine]:
    """Every engine, most preferred first."""
    from conveyor import plugins

    plugins.load("engines")
    return sorted(registered().values(), key=lambda e: (e.order, e.name))


def get_engine(name: str) -> Engine:
    """The engine called ``name`` (InvalidInput naming the known ones otherwise)."""
    engines = {e.name: e for e in all_engines()}
    if name not in engines:
        from conveyor import plugins

        raise plugins.missing("engines") or InvalidInput(f"unknown builder {name!r}: use one of {', '.join(engines)}")
    return engines[name]


def builder(preferred: str | None = None) -> Engine:
    """The engine to build with: the one named (it must be installed), else the first installed."""
    if preferred:
        chosen = get_engine(preferred)
        if shutil.which(chosen.command) is None:
            raise ConveyorError(f"the builder {chosen.name} is not installed")
        return chosen
    for candidate in all_engines():
        if shutil.which(candidate.command):
            return candidate
    names = [e.name for e in all_engines()]
    raise ConveyorError(f"no image builder found: install {', '.join(names[:-1])} or {names[-1]}")


def runner() -> Engine:
    """The first installed engine that runs containers (buildah only builds)."""
    able = [e for e in all_engines() if e.runs_containers]
    for candidate in able:
        if shutil.which(candidate.command):
            return candidate
    raise ConveyorError(f"running an image needs {' or '.join(e.name for e in able)}; none is installed")
