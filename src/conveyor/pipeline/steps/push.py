"""The ``push`` step type.

Push ``with.image`` (to ``with.to``; ``with.tls_verify``, credentials from the environment).
"""

from __future__ import annotations

from typing import Any

from conveyor.pipeline.context import StepContext
from conveyor.pipeline.step_types import step_type


@step_type("push", container_login=True)
def push(ctx: StepContext) -> dict[str, Any]:
    """Push ``with.image`` (to ``with.to``; ``with.tls_verify``, credentials from the environment)."""
    from conveyor.packaging.builders import detect_builder
    from conveyor.packaging.builders import push as run_push

    target = run_push(
        ctx.arg("image", required=True),
        detect_builder(ctx.arg("builder")),
        ctx.arg("to"),
        bool(ctx.arg("tls_verify", True)),
    )
    print(f"pushed {target}")
    return {"pushed": target}
