"""In-process throughput of model folders, measured on this machine in one interleaved run.

Rounds alternate between the models (the VM's speed drifts within a minute), each round
classifies the same batches for a fixed time, and the median round counts.
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path

from conveyor.optimize.agreement import BATCH, classifier


def throughput(folders: dict[str, Path], texts: list[str], rounds: int = 3, seconds: float = 1.5) -> dict[str, float]:
    """Texts per second of each model at batch 32, median of ``rounds`` interleaved rounds."""
    models = {name: classifier(folder) for name, folder in folders.items()}
    batch = (texts * (BATCH // max(1, len(texts)) + 1))[:BATCH]
    for model in models.values():
        model.classify(batch)  # warm-up
    measured: dict[str, list[float]] = {name: [] for name in models}
    for _ in range(rounds):
        for name, model in models.items():
            done, started = 0, time.perf_counter()
            while time.perf_counter() - started < seconds:
                model.classify(batch)
                done += len(batch)
            measured[name].append(done / (time.perf_counter() - started))
    return {name: statistics.median(values) for name, values in measured.items()}
