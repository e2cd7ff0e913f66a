"""The agreement two versions are expected to reach, and the bar a canary's live agreement is held to.

A fixed minimum (0.9) cannot fit every model: two honest retrains of a 3-class model agree on
about 87% of inputs, two of a binary model on 95%, and a byte-identical version on 100%.  What
the two versions do agree on is measurable before the canary sees a request: at ``rollout start``
both are run on the new version's reference sample (:mod:`conveyor.rollout.offline_agreement`),
and the share they agree on is stored in the rollout's status.  Live, the canary is then held to
that expectation, less a tolerance, but never to less than a floor above chance: a model whose
labels are no better than shuffled agrees with stable only as often as chance does (one in three
for three balanced classes), and that is what it would "expect".  The floor is
``chance + min_agreement_over_chance * (1 - chance)``: Cohen's kappa, asked of the live agreement.

The live share is a sample, so it is judged with its Wilson score interval: the canary fails only
when even the interval's upper end is below the bar, and a share below the bar whose interval
still reaches it is inconclusive (more mirrored answers decide it).  Where the measurement at
start already lies wholly below the bar (a model no better than shuffled labels), a few lucky
mirrored answers must not outvote it: the canary then passes only when the live interval's lower
end reaches the bar.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

#: the fixed minimum where nothing was measured before the canary (no reference sample, a regressor)
FALLBACK_MIN_AGREEMENT = 0.9


class ExpectedAgreement(BaseModel):
    """Measured at rollout start: how often the two versions answer alike on the reference sample."""

    share: float = Field(ge=0, le=1, description="share of reference items both versions label alike")
    chance: float = Field(ge=0, le=1, description="the share two unrelated models with these label shares agree on")
    items: int = Field(ge=1, description="reference items both versions answered")
    source: str = Field(description="where the reference sample came from")

    def bar(self, tolerance: float, over_chance: float) -> float:
        """The live agreement the canary is held to: expected less ``tolerance``, at least the chance floor."""
        floor = self.chance + over_chance * (1 - self.chance)
        return min(1.0, max(self.share - tolerance, floor))

    def known_below(self, bar: float) -> bool:
        """Whether the measurement at start is itself evidence of a share below ``bar`` (95% interval)."""
        return wilson_interval(round(self.share * self.items), self.items)[1] < bar


def wilson_interval(agreed: int, compared: int) -> tuple[float, float]:
    """The 95% Wilson score interval of ``agreed / compared`` (sound near 0 and 1, where the normal one is
    not; ``monitoring/statistics.wilson``); with nothing compared, anything from 0 to 1."""
    from conveyor.monitoring.statistics import wilson  # numpy: not at the CLI's start-up, which loads this module

    if compared <= 0:
        return 0.0, 1.0
    return wilson(agreed, compared)


def expectation_line(limits: Any, expected: ExpectedAgreement | None, why_not: str) -> str:
    """One line for ``rollout start``: what the canary's mirrored agreement will be held to, and on what
    evidence (the agreement measured at start) or why the fixed bar is used instead (``why_not``)."""
    if limits.mirror_percent <= 0:
        return "agreement: not checked (no stable traffic is mirrored: --mirror-percent 0)"
    if limits.min_agreement is not None:
        return f"agreement: held to --min-agreement {limits.min_agreement:.1%}, as set (nothing measured at start)"
    if expected is None:
        return f"agreement: held to the fixed {FALLBACK_MIN_AGREEMENT:.0%} bar; nothing measured at start: {why_not}"
    bar = expected.bar(limits.agreement_tolerance, limits.min_agreement_over_chance)
    return (
        f"agreement: expected {expected.share:.1%}, measured at start on {expected.items} items of {expected.source} "
        f"({expected.chance:.1%} by chance); the canary is held to {bar:.1%}"
    )
