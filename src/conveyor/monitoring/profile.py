"""A version's reference profile: how its inputs and answers looked on data it was judged on.

Compare SageMaker Model Monitor's baseline (statistics + constraints from a baseline job) and
Evidently's reference dataset.  Per numeric column: decile edges with each bin's share (what the
population stability index compares) and a fixed-size sample (what Kolmogorov-Smirnov compares);
per categorical column: the category shares (top ``MAX_CATEGORIES``, the rest as ``(other)``);
per embedding column (a text model's texts): a sample of their sentence embeddings, projected on
their principal components (``monitoring/embedding_drift.py``).  ``self_check``: how often the
drift test raised a false alarm between two halves of the reference itself
(``monitoring/self_check.py``).
Kept with the version as ``monitoring/profile.json``, so anyone who can download the version can
judge its traffic, and the served image carries it too.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, Field

from conveyor.monitoring.embedding_drift import DECIMALS, Projection, embed, fit_projection, sample_texts
from conveyor.monitoring.estimate import QualityReference, calibration_of, loss_models_of
from conveyor.monitoring.features import Column, Columns

PROFILE_FILE = "monitoring/profile.json"
#: for a profile that predates the stored estimators (CBPE's calibration, DLE's trees): them, fitted once
#: (``stored_profile``), under $CONVEYOR_HOME by the profile's digest (a version's own folder is verified
#: file by file: nothing is added to it)
ESTIMATORS = "estimators"
#: up to ``REFERENCE_SAMPLE_SIZE`` reference items themselves (JSON): a canary's expected agreement is measured on them
REFERENCE_SAMPLE_FILE = "monitoring/reference-sample.json"
REFERENCE_SAMPLE_SIZE = 500
BINS = 10
SAMPLE_SIZE = 2000
MAX_CATEGORIES = 50
OTHER = "(other)"


class ColumnProfile(BaseModel):
    name: str
    kind: str  # numeric | categorical
    side: str  # input | output
    count: int
    edges: list[float] = Field(default_factory=list, description="Interior bin edges (numeric).")
    shares: list[float] = Field(default_factory=list, description="Share of values per bin (numeric).")
    sample: list[float] = Field(default_factory=list, description="A fixed random sample of the values (numeric).")
    quantiles: dict[str, float] = Field(default_factory=dict, description="min, p5, p25, p50, p75, p95, max.")
    categories: dict[str, float] = Field(default_factory=dict, description="Share per category (categorical).")
    center: list[float] = Field(default_factory=list, description="The embeddings' mean (embedding).")
    components: list[list[float]] = Field(default_factory=list, description="Principal directions (embedding).")
    vectors: list[list[float]] = Field(default_factory=list, description="Sampled texts, projected (embedding).")

    def projection(self) -> Projection:
        return Projection(np.asarray(self.center), np.asarray(self.components))

    def bin_shares(self, values: np.ndarray) -> np.ndarray:
        """Share of ``values`` in each bin (-inf, e1], (e1, e2], ..., (ek, inf): a value equal to an edge
        falls below it, so a constant reference (no unknown tokens at all) still has a bin above."""
        counts = np.bincount(np.searchsorted(self.edges, values, side="left"), minlength=len(self.edges) + 1)
        return counts / max(len(values), 1)

    def category_shares(self, values: list[Any]) -> dict[str, float]:
        known = set(self.categories)
        counted = Counter(v if v in known else OTHER for v in map(str, values))
        return {k: n / max(len(values), 1) for k, n in counted.items()}


class SelfCheck(BaseModel):
    """The drift test run between two random halves of the reference, ``splits`` times: each
    alarm is a false one, as both halves come from one distribution."""

    splits: int
    half: int = Field(description="Items in each half: the window size the rate holds for.")
    false_alarms: int
    psi: float
    alpha: float
    columns: dict[str, int] = Field(default_factory=dict, description="False alarms per column.")

    @property
    def rate(self) -> float:
        return self.false_alarms / self.splits if self.splits else 0.0


class Profile(BaseModel):
    """Every watched column of one version, from ``items`` reference rows."""

    items: int
    source: str = Field(description="Where the reference came from (a file, a pipeline's split).")
    columns: dict[str, ColumnProfile]
    quality: QualityReference | None = Field(
        default=None, description="Labelled reference rows, scored: what label-free quality estimates learn from."
    )
    self_check: SelfCheck | None = Field(
        default=None, description="False alarms of the drift test between halves of the reference."
    )

    def save(self, path: Path) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(self.model_dump_json(indent=1))
        return path

    @classmethod
    def load(cls, path: Path) -> Profile:
        return cls.model_validate(json.loads(path.read_text()))


def stored_profile(path: Path) -> Profile:
    """The profile kept at ``path``, with its label-free estimators fitted (CBPE's calibration,
    DLE's trees): one that predates them has them fitted once and kept by the profile's digest
    (``$CONVEYOR_HOME/estimators/``, written whole or not at all), so no later call fits them
    again; where that cannot be written they are fitted each time."""
    import contextlib
    import hashlib

    from conveyor.atomic import write_atomic
    from conveyor.home import conveyor_home

    data = path.read_bytes()
    profile = Profile.model_validate(json.loads(data))
    quality = profile.quality
    if quality is None or not quality.truth or quality.calibration or quality.loss_models:
        return profile
    field = "calibration" if quality.scores else "loss_models"
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    kept = conveyor_home() / ESTIMATORS / f"{digest.removeprefix('sha256:')}.json"
    try:
        cached = json.loads(kept.read_bytes())
        fitted = cached[field] if cached.get("profile") == digest else None
    except (OSError, ValueError, TypeError, KeyError):
        fitted = None
    if fitted is None:
        fitted = calibration_of(quality) if quality.scores else loss_models_of(quality)
        with contextlib.suppress(OSError):  # else fitted again next time
            write_atomic(kept, json.dumps({"profile": digest, field: fitted}))
    return profile.model_copy(update={"quality": quality.model_copy(update={field: fitted})})


def profile_of(columns: Columns, source: str, seed: int = 0, quality: QualityReference | None = None) -> Profile:
    return Profile(
        items=columns.items,
        source=source,
        columns={name: _column(column, seed) for name, column in columns.by_name.items() if column.values},
        quality=quality,
    )


def _column(column: Column, seed: int) -> ColumnProfile:
    if column.kind == "embedding":
        return _embedding(column, seed)
    if column.kind == "categorical":
        counted = Counter(map(str, column.values))
        top = dict(counted.most_common(MAX_CATEGORIES))
        shares = {k: n / len(column.values) for k, n in top.items()}
        rest = len(column.values) - sum(top.values())
        if rest:
            shares[OTHER] = rest / len(column.values)
        return ColumnProfile(
            name=column.name, kind="categorical", side=column.side, count=len(column.values), categories=shares
        )
    values = np.asarray(column.values, dtype=np.float64)
    edges = np.unique(np.quantile(values, np.linspace(0, 1, BINS + 1)[1:-1]))
    profile = ColumnProfile(name=column.name, kind="numeric", side=column.side, count=len(values), edges=edges.tolist())
    profile.shares = profile.bin_shares(values).tolist()
    rng = np.random.default_rng(seed)
    sample = values if len(values) <= SAMPLE_SIZE else rng.choice(values, SAMPLE_SIZE, replace=False)
    profile.sample = [round(float(v), 6) for v in sample]
    points = np.quantile(values, [0, 0.05, 0.25, 0.5, 0.75, 0.95, 1])
    profile.quantiles = dict(zip(["min", "p5", "p25", "p50", "p75", "p95", "max"], map(float, points), strict=True))
    return profile


def _embedding(column: Column, seed: int) -> ColumnProfile:
    """A seeded sample of the texts, embedded; kept as their coordinates on the sample's own
    principal directions, with the centre and directions a window is projected by."""
    texts = sample_texts(column.values, seed)
    embeddings = embed(texts)
    projection = fit_projection(embeddings)
    return ColumnProfile(
        name=column.name,
        kind="embedding",
        side=column.side,
        count=len(column.values),
        center=_rounded(projection.center),
        components=[_rounded(row) for row in projection.components],
        vectors=[_rounded(row) for row in projection.apply(embeddings)],
    )


def _rounded(values: np.ndarray) -> list[float]:
    return [round(float(v), DECIMALS) for v in values]
