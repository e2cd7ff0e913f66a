"""In-process throughput of model folders, measured on this machine in one interleaved run, with its noise.

Rounds alternate between the models (the VM's speed drifts within a minute), each round
answers the same batch of evaluation inputs (texts, records or images, as the task takes
them) for a fixed time, and the median round counts.  A speed-up is the ratio of a variant's
round to the original's round beside it; the spread of those per-round ratios (smallest to
largest) is the interval the measurement cannot tell apart from noise, so a variant counts as
faster only when even its smallest ratio is above 1 (``faster_beyond_noise``).
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from conveyor.optimize.agreement import BATCH, TaskModel

ROUNDS = 5
ROUND_SECONDS = 0.8
# A variant must be this much faster in its slowest-looking round: timers and caches differ by a few
# percent between two runs of the very same graph, which is no reason to register a new version.
NOISE_MARGIN = 0.02


@dataclass(frozen=True)
class Speedup:
    """A variant's speed over the original's: the median of the per-round ratios and their range."""

    ratio: float
    low: float
    high: float

    @property
    def beyond_noise(self) -> bool:
        return self.low > 1 + NOISE_MARGIN

    def __str__(self) -> str:
        return f"{self.ratio:.2f}x (rounds {self.low:.2f}-{self.high:.2f}x)"


def measure(
    folders: dict[str, Path], inputs: list[Any], rounds: int | None = None, seconds: float | None = None
) -> dict[str, list[float]]:
    """Inputs per second of each model at batch 32, one value per interleaved round (ROUNDS of ROUND_SECONDS)."""
    rounds = ROUNDS if rounds is None else rounds
    seconds = ROUND_SECONDS if seconds is None else seconds
    models = {name: TaskModel(folder) for name, folder in folders.items()}
    chosen = (inputs * (BATCH // max(1, len(inputs)) + 1))[:BATCH]
    batches = {name: model.items(chosen) for name, model in models.items()}
    for name, model in models.items():
        model.scores(batches[name])  # warm-up
    measured: dict[str, list[float]] = {name: [] for name in models}
    order = list(models.items())
    for round_number in range(rounds):
        # alternate the order (A B, B A, ...): a load that rises or falls through the run favours no model
        for name, model in order if round_number % 2 == 0 else order[::-1]:
            done, started = 0, time.perf_counter()
            while time.perf_counter() - started < seconds:
                model.scores(batches[name])
                done += len(batches[name])
            measured[name].append(done / (time.perf_counter() - started))
    return measured


def throughput(folders: dict[str, Path], inputs: list[Any], rounds: int = 3, seconds: float = 1.5) -> dict[str, float]:
    """Inputs per second of each model at batch 32, median of ``rounds`` interleaved rounds."""
    return {name: statistics.median(values) for name, values in measure(folders, inputs, rounds, seconds).items()}


def speedup(original: list[float], variant: list[float]) -> Speedup:
    """The variant's speed-up over the original, round by round (the rounds are interleaved, so paired)."""
    ratios = [v / o for o, v in zip(original, variant, strict=True) if o > 0]
    if not ratios:
        return Speedup(0.0, 0.0, 0.0)
    return Speedup(statistics.median(ratios), min(ratios), max(ratios))
