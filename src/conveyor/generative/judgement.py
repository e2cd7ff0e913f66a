"""A generation metric judged with its own spread: passed, failed, or too noisy to judge.

A golden prompt asked ``runs`` times gives one score per run (1 or 0 for a text rule, a similarity for
a meaning one).  The metric is their mean; its 95% interval is a seeded percentile bootstrap over the
runs (``monitoring.evidence.bootstrapped``: the same runs give the same interval, and runs that all
agree give the point itself, as greedy decoding does).  Then, against the bar:

* the whole interval at or over the bar: **passed**; the whole interval under it: **failed**;
* the interval across the bar and wider than ``margin`` on either side of its middle: **too noisy to
  judge**, reported, never a failure (more runs, a lower temperature or a wider margin decide it);
* across the bar but within the margin: the mean decides.

A fixed threshold on one noisy run is what makes LLM gates flaky ("statistically unpassable"): here
a metric fails only when its own spread cannot explain the miss.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

Outcome = Literal["passed", "failed", "too noisy"]


@dataclass(frozen=True)
class Judgement:
    outcome: Outcome
    mean: float
    interval: tuple[float, float]
    bar: float
    margin: float
    runs: int

    @property
    def spread(self) -> float:
        """Half the interval's width: how far the metric moves by chance alone."""
        return (self.interval[1] - self.interval[0]) / 2

    def describe(self, what: str) -> str:
        low, high = self.interval
        measured = f"{what} {self.mean:.2f} over {self.runs} runs (95% interval {low:.2f} to {high:.2f})"
        if self.outcome == "too noisy":
            return (
                f"too noisy to judge: {measured}, against the bar {self.bar:.2f}: a spread of ±{self.spread:.2f} "
                f"is over the margin {self.margin:.2f}"
            )
        side = "at or over" if self.outcome == "passed" else "under"
        return f"{measured}, {side} the bar {self.bar:.2f}"

    def as_dict(self) -> dict[str, Any]:
        return {
            "outcome": self.outcome,
            "mean": round(self.mean, 4),
            "interval": [round(self.interval[0], 4), round(self.interval[1], 4)],
            "bar": self.bar,
            "margin": self.margin,
            "runs": self.runs,
        }


def judge(scores: list[float], bar: float, margin: float) -> Judgement:
    """The runs' ``scores`` against ``bar`` with their 95% interval (see the module's rules)."""
    import numpy as np

    from conveyor.monitoring.evidence import bootstrapped

    values = np.asarray(scores, dtype=np.float64)
    mean = float(values.mean())
    low, high = bootstrapped(np.mean, values)
    interval = (float(low), float(high))
    if low >= bar:
        outcome: Outcome = "passed"
    elif high < bar:
        outcome = "failed"
    elif (high - low) / 2 > margin:  # the interval holds the bar and is wider than the margin
        outcome = "too noisy"
    else:
        outcome = "passed" if mean >= bar else "failed"
    return Judgement(outcome, mean, interval, bar, margin, len(scores))
