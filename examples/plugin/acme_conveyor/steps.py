"""A pipeline step type from outside Conveyor: tell a channel (here, a file) what the run did."""

from __future__ import annotations

from typing import Any

from conveyor.pipeline.context import StepContext
from conveyor.pipeline.step_args import StepArgs
from conveyor.pipeline.step_types import step_type


class NotifyArgs(StepArgs):
    message: str
    channel: str = "ml-releases"


@step_type("acme-notify", args=NotifyArgs)
def notify(ctx: StepContext[NotifyArgs]) -> dict[str, Any]:
    """Append ``with.message`` to the channel's file in the project (notifications/CHANNEL.txt)."""
    options = ctx.options
    path = ctx.project / "notifications" / f"{options.channel}.txt"
    path.parent.mkdir(exist_ok=True)
    with path.open("a") as out:
        out.write(options.message + "\n")
    return {"channel": options.channel, "sent": options.message}
