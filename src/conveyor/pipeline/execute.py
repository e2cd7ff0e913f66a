"""Run one Python step in its own process: ``python -m conveyor.pipeline.execute PAYLOAD.json``.

The step function receives a StepContext and returns a dict of outputs, written as
``key=value`` lines to CONVEYOR_OUTPUT for later steps.  StepFailed ends the step with
its message; any other exception with its traceback.
"""

from __future__ import annotations

import importlib
import json
import os
import sys
import traceback
from pathlib import Path
from typing import TYPE_CHECKING, Any

from conveyor.errors import ConveyorError
from conveyor.pipeline.context import StepContext, StepFailed

if TYPE_CHECKING:
    from conveyor.pipeline.step_args import StepArgs

__all__ = ["StepContext", "StepFailed", "main"]


def load_function(spec: str, builtin: bool) -> Any:
    if builtin:
        from conveyor.pipeline.step_types import get_step_type

        return get_step_type(spec).run
    module_name, _, attr = spec.partition(":")
    module = importlib.import_module(module_name)
    try:
        return getattr(module, attr)
    except AttributeError:
        raise StepFailed(f"{module_name} has no function {attr!r}") from None


def write_outputs(outputs: dict[str, Any]) -> None:
    path = os.environ.get("CONVEYOR_OUTPUT")
    if not path or not outputs:
        return
    with open(path, "a") as handle:
        for key, value in outputs.items():
            text = value if isinstance(value, str) else json.dumps(value, default=str)
            handle.write(f"{key}={text}\n")


def step_options(payload: dict[str, Any]) -> StepArgs | None:
    """A built-in step type's resolved ``with:`` validated into its model; None for a Python step."""
    if not payload["builtin"]:
        return None
    from conveyor.pipeline.step_args import parse_args
    from conveyor.pipeline.step_types import get_step_type

    try:
        return parse_args(get_step_type(payload["function"]).args, payload["with"])
    except ValueError as exc:
        raise StepFailed(f"`with:` of `uses: {payload['function']}`: {exc}") from None


def main(payload_path: str) -> int:
    payload = json.loads(Path(payload_path).read_text())
    project = Path(payload["project"])
    sys.path.insert(0, str(project))
    try:
        ctx = StepContext(
            payload["params"],
            payload["with"],
            payload["run_id"],
            payload["step"],
            Path(payload["artifacts"]),
            project,
            timeout=float(payload.get("timeout", 3600)),
            options=step_options(payload),
        )
        function = load_function(payload["function"], payload["builtin"])
        outputs = function(ctx) or {}
        if not isinstance(outputs, dict):
            raise StepFailed(f"{payload['function']} returned {type(outputs).__name__}, not a dict of outputs")
        write_outputs(outputs)
    except (StepFailed, ConveyorError) as exc:
        print(f"step failed: {exc}", file=sys.stderr, flush=True)
        return 1
    except Exception:
        traceback.print_exc()
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
