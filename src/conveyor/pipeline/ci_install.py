"""How a generated CI job installs Conveyor: ``ci.install`` pinned, with the extras its steps need.

Each step type declares the conveyor-ml extras its work needs (``extras=`` of ``@step_type``:
``[build]`` for a build, ``[lint]`` for ruff...); a job installs the core plus the union of its
steps' extras, so a job that only fetches and deploys installs what ``pip install conveyor-ml``
brings and nothing else.  The extras are added to the ``ci.install`` entry that names Conveyor
(``conveyor-ml==V``, ``conveyor-ml @ git+URL``, a ``conveyor_ml-*.whl`` path), keeping its pin and
its index options; other entries (``pytest``) pass as written.  ``run:`` and ``python:`` steps run
the user's own commands: what they need beyond the core goes into ``ci.install`` by hand.
"""

from __future__ import annotations

import shlex
from collections.abc import Iterable
from pathlib import PurePosixPath
from typing import TYPE_CHECKING

from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import InvalidWheelFilename, canonicalize_name, parse_wheel_filename

from conveyor.pipeline.step_types import step_types

if TYPE_CHECKING:
    from conveyor.pipeline.spec import CISettings, Step

# The installer every generated job runs (ci.installer: uv), pinned like everything else.
UV = "uv==0.13.9"
DISTRIBUTION = "conveyor-ml"


def extras_of(steps: Iterable[Step]) -> list[str]:
    """The conveyor-ml extras that ``steps`` need together (sorted; empty: the core does)."""
    types = step_types()
    needed: set[str] = set()
    for step in steps:
        if step.uses:
            needed.update(types[step.uses].extras_for(step))
    return sorted(needed)


def install_arguments(args: str, extras: Iterable[str] = ()) -> str:
    """One ``ci.install`` entry as shell words; ``NAME @ URL`` (a PEP 508 direct reference) stays one,
    and the word that names Conveyor gets ``extras``."""
    merged: list[str] = []
    for word in shlex.split(args):
        if len(merged) >= 2 and merged[-1] == "@" and not merged[-2].startswith("-"):
            merged[-2:] = [f"{merged[-2]} @ {word}"]
        else:
            merged.append(word)
    extras = sorted(extras)
    return " ".join(shlex.quote(_with_extras(arg, extras) if extras else arg) for arg in merged)


def _with_extras(word: str, extras: list[str]) -> str:
    if word.startswith("-"):
        return word
    if word.endswith(".whl"):  # a wheel file: pip and uv take `path.whl[extra,...]`
        try:
            name = parse_wheel_filename(PurePosixPath(word).name)[0]
        except InvalidWheelFilename:
            return word
        return f"{word}[{','.join(extras)}]" if name == DISTRIBUTION else word
    try:
        requirement = Requirement(word)
    except InvalidRequirement:
        return word
    if canonicalize_name(requirement.name) != DISTRIBUTION:
        return word
    requirement.extras |= set(extras)
    return str(requirement)


def install_commands(ci: CISettings, extras: Iterable[str], *, pod: bool = False) -> list[str]:
    """The shell commands that install ``ci.install`` with ``extras``: uv into the job's Python, or pip.

    In a KFP task's pod (``pod``) uv installs into the system Python and pip runs quietly."""
    extras = list(extras)
    pip = "python -m pip install --quiet" if pod else "python -m pip install"
    if ci.installer == "pip":
        return [f"{pip} {install_arguments(args, extras)}" for args in ci.install]
    target = "--system" if pod else '--python "$(command -v python)"'
    return [f"{pip} {UV}"] + [
        f"python -m uv pip install {target} {install_arguments(args, extras)}" for args in ci.install
    ]
