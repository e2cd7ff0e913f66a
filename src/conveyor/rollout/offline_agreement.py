"""Before a canary sees a request: how often the new version answers as stable does, offline.

Both versions are loaded from the registry and run, by the same task code ``conveyor serve``
runs, on the new version's reference sample (``monitoring/reference-sample.json``, kept by
``conveyor models register --reference``, or from its gate's ``--sample``; else stable's).  The
share of items they label alike is what the canary's mirrored agreement is judged against
(:mod:`conveyor.rollout.analysis.expectation`).  Where there is nothing to measure (no reference
sample, a regressor or a bare tensor model) :class:`NothingToMeasure` says why, and the agreement
metric keeps its fixed fallback.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from conveyor.monitoring.profile import REFERENCE_SAMPLE_FILE
from conveyor.rollout.analysis.expectation import ExpectedAgreement

BATCH = 64


class NothingToMeasure(Exception):
    """The two versions' agreement cannot be measured offline; the message says why, in a few words."""


def measure_expected_agreement(stable_ref: str, canary_ref: str) -> ExpectedAgreement:
    """The two registered versions' agreement on the reference sample, or NothingToMeasure saying why not."""
    from conveyor.registry.config import open_registry

    registry = open_registry()
    _, canary_path = registry.cached(canary_ref)
    _, stable_path = registry.cached(stable_ref)
    versions = ((canary_ref, canary_path), (stable_ref, stable_path))
    found = [(ref, path / REFERENCE_SAMPLE_FILE) for ref, path in versions]
    sample = next(((ref, file) for ref, file in found if file.is_file()), None)
    if sample is None:
        raise NothingToMeasure(
            f"neither {canary_ref} nor {stable_ref} keeps a reference sample (models register --reference or --sample)"
        )
    items = json.loads(sample[1].read_text())
    if not isinstance(items, list) or not items:
        raise NothingToMeasure(f"{sample[0]}'s {REFERENCE_SAMPLE_FILE} holds no items")
    stable, canary = _labels(stable_path, items), _labels(canary_path, items)
    if stable is None or canary is None:
        raise NothingToMeasure("a model without labels (a regressor or a tensor model) has no labels to agree on")
    agreed = sum(a == b for a, b in zip(stable, canary, strict=True))
    shares = [Counter(stable), Counter(canary)]
    chance = sum(shares[0][label] * shares[1][label] for label in shares[0]) / (len(items) ** 2)
    return ExpectedAgreement(
        share=round(agreed / len(items), 4),
        chance=round(chance, 4),
        items=len(items),
        source=f"{sample[0]} {REFERENCE_SAMPLE_FILE}",
    )


def _labels(folder: Path, items: list[Any]) -> list[str] | None:
    """Each item's label as the version's server answers it; None for a model without labels."""
    from conveyor.serving.dataplane import ServingOptions
    from conveyor.serving.spec import resolve_model
    from conveyor.serving.tasks import server_for

    resolved = resolve_model(folder)
    if resolved.spec.task.regression or not resolved.spec.task.named_inputs:
        return None
    task = server_for(resolved, ServingOptions())
    task.load()
    if not task.classifier:
        return None
    labels: list[str] = []
    for start in range(0, len(items), BATCH):
        scores = np.asarray(task.score(task.parse_items(items[start : start + BATCH])))
        labels += [resolved.spec.labels[i] for i in scores.argmax(axis=1).tolist()]
    return labels
