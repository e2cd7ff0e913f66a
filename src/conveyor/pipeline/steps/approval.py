"""The ``approval`` step type: the run waits here until a person approves or rejects it.

The chapter's exercise ("prompt you before registering the model after training it") as a
step: put it between ``train`` and ``register``.  Locally the step shows as *waiting*; anyone
can decide from another terminal with ``conveyor pipeline approve RUN STEP --reason ...`` (or
``reject``), and who decided and why go into the run history and, for a later ``register``
step, into the version's lineage.  ``with.timeout`` (a duration, default: just under the step's
own timeout) fails the step when nobody decides in time.

In a generated GitHub workflow the step's job is bound to the GitHub environment
``with.environment`` (default ``approval``): give that environment required reviewers and
GitHub holds the job until one of them approves, so the step itself passes when it runs there.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from conveyor.durations import parse_duration
from conveyor.pipeline.context import StepContext, StepFailed
from conveyor.pipeline.decisions import wait_for_decision
from conveyor.pipeline.history import now_iso
from conveyor.pipeline.step_args import StepArgs
from conveyor.pipeline.step_types import step_type

if TYPE_CHECKING:
    from conveyor.pipeline.spec import Step

DEFAULT_ENVIRONMENT = "approval"


class ApprovalArgs(StepArgs):
    timeout: str | float | None = None  # a duration ("10m", 600); default: just under the step's own timeout
    environment: str = DEFAULT_ENVIRONMENT  # the GitHub environment whose reviewers decide in CI


def _environment(step: Step) -> dict[str, Any]:
    return {"environment": {"name": str(step.with_.get("environment") or DEFAULT_ENVIRONMENT)}}


@step_type("approval", waits_for_decision=True, github_job=_environment, args=ApprovalArgs)
def approval(ctx: StepContext[ApprovalArgs]) -> dict[str, Any]:
    """Wait for a person: ``conveyor pipeline approve RUN STEP`` or ``reject`` (``with.timeout``)."""
    if os.environ.get("GITHUB_ACTIONS") == "true":
        environment = ctx.options.environment
        print(f"approved through the GitHub environment {environment!r} (its required reviewers let this job run)")
        return {"approved": True, "by": f"github-environment:{environment}", "reason": "", "at": now_iso()}
    given = ctx.options.timeout
    timeout = parse_duration(given) if given is not None else max(1.0, ctx.timeout - 5)
    print(
        f"waiting up to {timeout:g}s for a decision: conveyor pipeline approve {ctx.run_id} {ctx.step} "
        f"--reason '...' (or reject)",
        flush=True,
    )
    decision = wait_for_decision(ctx.run_id, ctx.step, timeout)
    if decision is None:
        raise StepFailed(f"nobody approved {ctx.step!r} within {timeout:g}s")
    why = f": {decision.reason}" if decision.reason else ""
    if not decision.approved:
        raise StepFailed(f"rejected by {decision.by}{why}")
    print(f"approved by {decision.by}{why}")
    return decision.as_dict()
