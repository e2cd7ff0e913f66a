"""What a Python pipeline step receives, and how it fails on purpose.

Kept apart from ``execute`` (which runs as ``__main__``) so that a step raising
``StepFailed`` raises the very class the executor catches.

``StepContext`` is generic in the step's arguments: a built-in step type declares
``def build(ctx: StepContext[BuildArgs])`` and reads ``ctx.options.tag`` typed.  A Python step
(``python: module:function``) reads its free-form ``with:`` through ``ctx.arg``; its ``options``
is None (``StepContext[None]``), so its process never imports pydantic for them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, TypeVar

if TYPE_CHECKING:
    from conveyor.pipeline.step_args import StepArgs

#: the model of a step type's ``with:`` arguments (``conveyor.pipeline.step_args``); None for a Python step
ArgsT = TypeVar("ArgsT", bound="StepArgs | None")


class StepFailed(Exception):
    """A step's own verdict: fail with this message (no traceback)."""


@dataclass
class StepContext(Generic[ArgsT]):
    params: dict[str, Any]
    args: dict[str, Any]  # the step's resolved `with:`
    run_id: str
    step: str
    artifacts: Path
    project: Path
    timeout: float = 3600.0  # the step's timeout: its process is killed after this many seconds
    #: a step type's resolved ``with:`` validated into its model (``ctx.options.<key>``); None for a Python step
    options: ArgsT = field(kw_only=True)

    def arg(self, name: str, default: Any = None, required: bool = False) -> Any:
        if name in self.args and self.args[name] is not None:
            return self.args[name]
        if required:
            raise StepFailed(f"step {self.step!r} needs `with: {{{name}: ...}}`")
        return default
