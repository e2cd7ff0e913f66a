"""A bare name that is both a local folder and a registered model: which one is served, said out loud.

``conveyor serve tickets`` (and ``conveyor init --name tickets``, which serves the model to record
its contract) used to take a folder named ``tickets`` in the working directory over the
registered model of that name, silently.  The rule, in one place:

* a path written as a path (``./tickets``, ``models/tickets``, ``/abs/tickets``), or a name that is
  no registered model (or no registry answers), is the path, as before, without a word;
* a bare name that is both: the folder when it holds a model ``conveyor serve`` can load (you
  built it here), else the registered model (a project or data folder that happens to share the
  model's name); either way a notice says which was taken and how to ask for the other
  (``./tickets`` for the folder, ``tickets:3`` or ``tickets@production`` for the registered one).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from conveyor.errors import ConveyorError
from conveyor.registry.refs import looks_like_ref
from conveyor.serving.spec import locate_model


@dataclass(frozen=True)
class Choice:
    target: str  # a local path, or a registry reference (then ``from_registry``)
    from_registry: bool
    notice: str | None = None  # set when the name was ambiguous: which one, and how to name the other


def choose(target: str) -> Choice:
    """Whether ``target`` is served from the local path or from the registry (see the module's rule)."""
    from conveyor.registry.config import open_registry

    path = Path(target)
    if not path.exists():
        return Choice(target, looks_like_ref(target))
    if not looks_like_ref(target) or "/" in target or target.startswith("."):
        return Choice(target, False)
    try:
        version = open_registry().resolve(target)
    except (ConveyorError, OSError):
        return Choice(target, False)
    local = f"./{target}"
    if _servable(path):
        return Choice(
            target,
            False,
            f"{target} is both the model folder {local} and the registered model {version.name}: serving "
            f"the folder {local}; name a version ({version.ref}, or {version.name}@ALIAS) for the registered one",
        )
    return Choice(
        version.ref,
        True,
        f"{target} is both the folder {local} (no model in it) and the registered model {version.name}: "
        f"serving the registered {version.ref}; name a model path inside {local} to serve a local one",
    )


def _servable(path: Path) -> bool:
    if path.is_file():
        return path.suffix == ".onnx"
    try:
        locate_model(path)
    except ConveyorError:
        return False
    return True
