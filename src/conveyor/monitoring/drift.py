"""Drift: one window of served traffic against the version's reference profile, column by column.

A column drifts when the shift is both large and real:
- large: the population stability index over the reference's decile bins (numeric) or its
  categories is at least ``psi`` (by the usual reading: below 0.1 stable, 0.1-0.2 moderate, 0.2
  and over a shift to act on).  Its scale does not grow with the window, but on small samples it
  is noisy: two halves of one 442-row dataset differ by 0.1-0.25 by chance alone;
- real: a test says the window and the reference are unlikely to be one distribution (p below
  ``alpha``): scipy's two-sample Kolmogorov-Smirnov test (numeric, against the reference's
  sample) or chi-square test of homogeneity (categorical, on the counts).  On large windows every
  trivial shift is significant, which the PSI guards against.
The Jensen-Shannon distance of categorical shares is reported beside them.  A window smaller
than ``min_items`` is not judged.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from conveyor.extras import needs
from conveyor.monitoring.features import Columns
from conveyor.monitoring.profile import ColumnProfile, Profile
from conveyor.monitoring.thresholds import Thresholds

with needs("monitor", "drift detection (conveyor monitor)"):
    from scipy.spatial.distance import jensenshannon
    from scipy.stats import chi2_contingency, ks_2samp

EPSILON = 1e-4  # an empty bin's share, so the index stays finite


@dataclass
class ColumnDrift:
    name: str
    side: str
    kind: str
    items: int
    psi: float
    drifted: bool
    pvalue: float  # the test's: Kolmogorov-Smirnov (numeric) or chi-square (categorical)
    ks_statistic: float | None = None
    js_distance: float | None = None
    reference: dict[str, Any] = field(default_factory=dict)  # p50 or the top category, for the table
    window: dict[str, Any] = field(default_factory=dict)


@dataclass
class WindowDrift:
    index: int
    items: int
    start: str
    end: str
    judged: bool
    columns: list[ColumnDrift]
    quality: dict[str, Any] | None = None  # monitoring.quality.window_quality: live quality, with its evidence
    quality_failed: bool = False
    estimated: dict[str, Any] | None = None  # monitoring.estimate: CBPE or DLE, from the answers alone

    @property
    def drifted(self) -> list[str]:
        return [c.name for c in self.columns if c.drifted]


def psi(reference: np.ndarray, window: np.ndarray) -> float:
    ref, win = np.clip(reference, EPSILON, None), np.clip(window, EPSILON, None)
    return float(np.sum((win - ref) * np.log(win / ref)))


def compare(profile: Profile, columns: Columns, thresholds: Thresholds) -> list[ColumnDrift]:
    """Each profiled column that the window has values for, judged."""
    results = []
    for name, reference in profile.columns.items():
        column = columns.by_name.get(name)
        if column is None or not column.values:
            continue
        results.append(
            _numeric(reference, column.values, thresholds)
            if reference.kind == "numeric"
            else _categorical(reference, column.values, thresholds)
        )
    return results


def _numeric(reference: ColumnProfile, raw: list[Any], thresholds: Thresholds) -> ColumnDrift:
    values = np.asarray(raw, dtype=np.float64)
    index = psi(np.asarray(reference.shares), reference.bin_shares(values))
    test = ks_2samp(np.asarray(reference.sample), values)
    return ColumnDrift(
        name=reference.name,
        side=reference.side,
        kind="numeric",
        items=len(values),
        psi=round(index, 4),
        drifted=index >= thresholds.psi and float(test.pvalue) < thresholds.alpha,
        pvalue=float(test.pvalue),
        ks_statistic=round(float(test.statistic), 4),
        reference={"p50": reference.quantiles.get("p50")},
        window={"p50": float(np.median(values))},
    )


def _categorical(reference: ColumnProfile, raw: list[Any], thresholds: Thresholds) -> ColumnDrift:
    window = reference.category_shares(raw)
    names = sorted(set(reference.categories) | set(window))
    ref = np.array([reference.categories.get(n, 0.0) for n in names])
    win = np.array([window.get(n, 0.0) for n in names])
    index = psi(ref, win)
    counts = np.array([ref * reference.count, win * len(raw)])
    counts = counts[:, counts.sum(axis=0) > 0]
    pvalue = float(chi2_contingency(counts).pvalue) if counts.shape[1] > 1 else 1.0
    top_ref = max(reference.categories, key=reference.categories.__getitem__)
    top_win = max(window, key=window.__getitem__)
    return ColumnDrift(
        name=reference.name,
        side=reference.side,
        kind="categorical",
        items=len(raw),
        psi=round(index, 4),
        drifted=index >= thresholds.psi and pvalue < thresholds.alpha,
        pvalue=pvalue,
        js_distance=round(float(jensenshannon(ref, win, base=2)), 4),
        reference={"top": f"{top_ref} {reference.categories[top_ref]:.0%}"},
        window={"top": f"{top_win} {window[top_win]:.0%}"},
    )
