"""The ``challenge`` step type: the retrained ``with.candidate`` against the live ``with.champion``
(default ``<name>@production``) on the labelled traffic in ``with.labelled``.

The step fails unless the candidate is at least ``with.margin`` better (accuracy, or mean absolute
error for a regressor) on at least ``with.min_items`` rows; either way the candidate is tagged with
the verdict, so a refused version's lineage says why it never went out.  Put it between the
``register`` of a retraining and its rollout: a worse model stops here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import Field

from conveyor.monitoring.challenge import DEFAULT_MARGIN, DEFAULT_MIN_ITEMS
from conveyor.pipeline.context import StepContext, StepFailed
from conveyor.pipeline.step_args import StepArgs
from conveyor.pipeline.step_types import step_type


class ChallengeArgs(StepArgs):
    candidate: str  # name:N, e.g. ${{ steps.register.outputs.ref }}
    labelled: str  # a CSV of labelled traffic, relative to the project
    champion: str | None = None  # default: the candidate's name@production
    target: str | None = None  # default: label (value for a regressor)
    margin: float = DEFAULT_MARGIN
    min_items: int = Field(default=DEFAULT_MIN_ITEMS, ge=1)
    recent: int | None = Field(default=None, ge=1)


@step_type("challenge", args=ChallengeArgs)
def challenge(ctx: StepContext[ChallengeArgs]) -> dict[str, Any]:
    """Pass ``with.candidate`` only if it beats the live version on recent labelled traffic."""
    from conveyor.monitoring.challenge import challenge as judge
    from conveyor.monitoring.challenge import champion_of, record_verdict
    from conveyor.serving.fetch import resolve_served

    args = ctx.options
    champion = champion_of(args.candidate, args.champion)
    labelled = Path(args.labelled) if Path(args.labelled).is_absolute() else ctx.project / args.labelled
    verdict = judge(
        resolve_served(args.candidate),
        resolve_served(champion),
        labelled,
        target=args.target,
        margin=args.margin,
        min_items=args.min_items,
        recent=args.recent,
    )
    record_verdict(args.candidate, verdict)
    print(f"{verdict.candidate.ref} against {champion} ({verdict.champion.ref}): {verdict.reason}")
    if not verdict.passed:
        raise StepFailed(f"{verdict.candidate.ref} refused: {verdict.reason}")
    return {
        "ref": verdict.candidate.ref,
        "version": int(verdict.candidate.ref.rpartition(":")[2]),
        "champion": verdict.champion.ref,
        "metric": verdict.candidate.metric,
        "candidate_score": verdict.candidate.value,
        "champion_score": verdict.champion.value,
        "items": verdict.items,
    }
