"""In-process throughput of model folders, measured on this machine in one interleaved run.

Rounds alternate between the models (the VM's speed drifts within a minute), each round
answers the same batch of evaluation inputs (texts, records or images, as the task takes
them) for a fixed time, and the median round counts.
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path
from typing import Any

from conveyor.optimize.agreement import BATCH, TaskModel


def throughput(folders: dict[str, Path], inputs: list[Any], rounds: int = 3, seconds: float = 1.5) -> dict[str, float]:
    """Inputs per second of each model at batch 32, median of ``rounds`` interleaved rounds."""
    models = {name: TaskModel(folder) for name, folder in folders.items()}
    chosen = (inputs * (BATCH // max(1, len(inputs)) + 1))[:BATCH]
    batches = {name: model.items(chosen) for name, model in models.items()}
    for name, model in models.items():
        model.scores(batches[name])  # warm-up
    measured: dict[str, list[float]] = {name: [] for name in models}
    for _ in range(rounds):
        for name, model in models.items():
            done, started = 0, time.perf_counter()
            while time.perf_counter() - started < seconds:
                model.scores(batches[name])
                done += len(batches[name])
            measured[name].append(done / (time.perf_counter() - started))
    return {name: statistics.median(values) for name, values in measured.items()}
