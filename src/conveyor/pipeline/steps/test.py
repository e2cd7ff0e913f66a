"""The ``test`` step type: the project's tests: ``with.command`` (default ``python -m pytest -q``)."""

from __future__ import annotations

import shlex
import subprocess
from typing import Any

from conveyor.pipeline.context import StepContext, StepFailed
from conveyor.pipeline.step_types import step_type


@step_type("test")
def test(ctx: StepContext) -> dict[str, Any]:
    """The project's tests: ``with.command`` (default ``python -m pytest -q``)."""
    command = ctx.arg("command", "python -m pytest -q")
    result = subprocess.run(shlex.split(command), cwd=ctx.project)
    if result.returncode != 0:
        raise StepFailed(f"{command} exited with {result.returncode}")
    return {"command": command}
