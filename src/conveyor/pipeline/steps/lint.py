"""The ``lint`` step type: ruff over ``with.path`` (default: the project)."""

from __future__ import annotations

from typing import Any

from conveyor.pipeline.context import StepContext, StepFailed
from conveyor.pipeline.step_args import StepArgs
from conveyor.pipeline.step_types import step_type


class LintArgs(StepArgs):
    path: str = "."  # relative to the project


@step_type("lint", args=LintArgs, extras=("lint",))
def lint(ctx: StepContext[LintArgs]) -> dict[str, Any]:
    """ruff over ``with.path`` (default: the project)."""
    from conveyor.verify.checks import CheckFailed, Context, SkipCheck, find_check
    from conveyor.verify.contract import Contract

    path = ctx.project / ctx.options.path
    try:
        message = find_check("lint.ruff").fn(Context(None, Contract(), project=path))
    except (CheckFailed, SkipCheck) as exc:
        raise StepFailed(str(exc)) from None
    print(message)
    return {"result": message}
