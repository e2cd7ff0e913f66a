"""The ``test`` step type: the project's tests: ``with.command`` (default ``python -m pytest -q``)."""

from __future__ import annotations

import shlex
import subprocess
from typing import Any

from conveyor.pipeline.context import StepContext, StepFailed
from conveyor.pipeline.step_args import StepArgs
from conveyor.pipeline.step_types import step_type


class TestArgs(StepArgs):
    command: str = "python -m pytest -q"


@step_type("test", args=TestArgs)
def test(ctx: StepContext[TestArgs]) -> dict[str, Any]:
    """The project's tests: ``with.command`` (default ``python -m pytest -q``)."""
    command = ctx.options.command
    result = subprocess.run(shlex.split(command), cwd=ctx.project)
    if result.returncode != 0:
        raise StepFailed(f"{command} exited with {result.returncode}")
    return {"command": command}
