"""Every built-in step type's function takes the context of its own arguments' model.

``@step_type(..., args=Model)`` accepts only a function of ``StepContext[Model]`` when mypy checks
it (``make lint``), but a bare ``StepContext`` is ``StepContext[Any]`` to a type checker: the
function would pass while ``ctx.options`` went unchecked.  This test closes that gap for the
built-ins; plugins' step types are their authors' to check.
"""

from __future__ import annotations

import typing

from conveyor.pipeline.context import StepContext
from conveyor.pipeline.step_args import StepArgs
from conveyor.pipeline.step_types import step_types


def test_each_builtin_step_reads_its_own_arguments_model() -> None:
    builtins = {name: t for name, t in step_types().items() if t.run.__module__.startswith("conveyor.")}
    assert {"approval", "build", "deploy", "push", "register", "verify"} <= set(builtins)
    for name, kind in builtins.items():
        assert issubclass(kind.args, StepArgs) and kind.args is not StepArgs, f"{name} declares no arguments model"
        taken = typing.get_type_hints(kind.run)["ctx"]
        assert taken == StepContext[kind.args], (
            f"{name}'s function takes {taken}, not StepContext[{kind.args.__name__}]"
        )
