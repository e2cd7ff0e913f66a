"""Drift: one window of served traffic against the version's reference profile, column by column.

A column drifts when the shift is both large and real:
- large: the population stability index over the reference's decile bins (numeric) or its
  categories is at least ``psi`` (by the usual reading: below 0.1 stable, 0.1-0.2 moderate, 0.2
  and over a shift to act on).  Its scale does not grow with the window, but on small samples it
  is noisy: two halves of one 442-row dataset differ by 0.1-0.25 by chance alone;
- real: a test says the window and the reference are unlikely to be one distribution (p below
  ``alpha``): the two-sample Kolmogorov-Smirnov test (numeric, against the reference's
  sample; its exact p-value) or the chi-square test of homogeneity (categorical, on the counts),
  computed in numpy (``monitoring/statistics.py``: a judging process never imports scipy).
  On large windows every trivial shift is significant, which the PSI guards against.
The Jensen-Shannon distance of categorical shares is reported beside them.  A text model's
texts (an ``embedding`` column, where the profile has one) are judged by their meaning: the
maximum mean discrepancy between the window's and the reference's sentence embeddings, with a
permutation p-value (``monitoring/embedding_drift.py``); a window of another subject drifts there
when its lengths do not.

Many columns tested at once raise more false alarms than one: at ``alpha`` 0.01 and ten
independent columns, about one window in ten of unchanged traffic would flag some column.  So
the p-values of one window are adjusted together with the Benjamini-Hochberg procedure, and a
column is "real" when its adjusted p-value is below ``alpha``: on unchanged traffic the chance
that any column of a window drifts stays at about ``alpha``, while a column whose shift is strong
keeps a tiny p-value. The window's drift share is the share of its tested columns that drifted
(Evidently's dataset drift share). A window smaller than ``min_items`` is not judged.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from conveyor.monitoring.embedding_drift import embed, mmd_test, sample_texts
from conveyor.monitoring.features import Columns
from conveyor.monitoring.profile import ColumnProfile, Profile
from conveyor.monitoring.statistics import benjamini_hochberg, chi2_contingency_pvalue, jensen_shannon, ks_2samp
from conveyor.monitoring.thresholds import Thresholds

EPSILON = 1e-4  # an empty bin's share, so the index stays finite


@dataclass
class ColumnDrift:
    name: str
    side: str
    kind: str
    items: int
    psi: float | None  # none for an embedding column (its statistic is ``mmd``)
    drifted: bool
    pvalue: float  # the test's: Kolmogorov-Smirnov (numeric), chi-square (categorical) or MMD permutation
    adjusted_pvalue: float | None = None  # Benjamini-Hochberg over the window's columns: what is judged
    ks_statistic: float | None = None
    js_distance: float | None = None
    mmd: float | None = None  # an embedding column's squared maximum mean discrepancy
    reference: dict[str, Any] = field(default_factory=dict)  # p50 or the top category, for the table
    window: dict[str, Any] = field(default_factory=dict)
    window_shares: list[float] = field(default_factory=list)  # numeric: the window's share in each reference bin
    window_categories: dict[str, float] = field(default_factory=dict)  # categorical: the window's share of each


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

    @property
    def drift_share(self) -> float | None:
        """The share of the tested columns that drifted (none when nothing was tested)."""
        return round(len(self.drifted) / len(self.columns), 4) if self.columns else None


def psi(reference: np.ndarray, window: np.ndarray) -> float:
    ref, win = np.clip(reference, EPSILON, None), np.clip(window, EPSILON, None)
    return float(np.sum((win - ref) * np.log(win / ref)))


def compare(profile: Profile, columns: Columns, thresholds: Thresholds, seed: int = 0) -> list[ColumnDrift]:
    """Each profiled column that the window has values for, judged; p-values adjusted together."""
    results = []
    for name, reference in profile.columns.items():
        column = columns.by_name.get(name)
        if column is None or not column.values:
            continue
        if reference.kind == "numeric":
            results.append(_numeric(reference, column.values))
        elif reference.kind == "embedding":
            results.append(_embedding(reference, column.values, seed))
        else:
            results.append(_categorical(reference, column.values))
    if results:
        adjusted = benjamini_hochberg([r.pvalue for r in results])
        for result, pvalue in zip(results, adjusted, strict=True):
            result.adjusted_pvalue = float(pvalue)
            large = result.psi is None or result.psi >= thresholds.psi  # an embedding's sample bounds its test
            result.drifted = large and result.adjusted_pvalue < thresholds.alpha
    return results


def _numeric(reference: ColumnProfile, raw: list[Any]) -> ColumnDrift:
    values = np.asarray(raw, dtype=np.float64)
    shares = reference.bin_shares(values)
    index = psi(np.asarray(reference.shares), shares)
    statistic, pvalue = ks_2samp(np.asarray(reference.sample), values)
    return ColumnDrift(
        name=reference.name,
        side=reference.side,
        kind="numeric",
        items=len(values),
        psi=round(index, 4),
        drifted=False,  # judged in compare, with the window's other columns
        pvalue=pvalue,
        ks_statistic=round(statistic, 4),
        reference={"p50": reference.quantiles.get("p50")},
        window={"p50": float(np.median(values))},
        window_shares=[round(float(share), 4) for share in shares],
    )


def _categorical(reference: ColumnProfile, raw: list[Any]) -> ColumnDrift:
    window = reference.category_shares(raw)
    names = sorted(set(reference.categories) | set(window))
    ref = np.array([reference.categories.get(n, 0.0) for n in names])
    win = np.array([window.get(n, 0.0) for n in names])
    index = psi(ref, win)
    counts = np.array([ref * reference.count, win * len(raw)])
    counts = counts[:, counts.sum(axis=0) > 0]
    pvalue = chi2_contingency_pvalue(counts) if counts.shape[1] > 1 else 1.0
    top_ref = max(reference.categories, key=reference.categories.__getitem__)
    top_win = max(window, key=window.__getitem__)
    return ColumnDrift(
        name=reference.name,
        side=reference.side,
        kind="categorical",
        items=len(raw),
        psi=round(index, 4),
        drifted=False,
        pvalue=pvalue,
        js_distance=round(jensen_shannon(ref, win), 4),
        reference={"top": f"{top_ref} {reference.categories[top_ref]:.0%}"},
        window={"top": f"{top_win} {window[top_win]:.0%}"},
        window_categories={name: round(share, 4) for name, share in window.items()},
    )


def _embedding(reference: ColumnProfile, raw: list[Any], seed: int) -> ColumnDrift:
    texts = sample_texts(raw, seed)
    window = reference.projection().apply(embed(texts))
    test = mmd_test(np.asarray(reference.vectors), window, seed)
    return ColumnDrift(
        name=reference.name,
        side=reference.side,
        kind="embedding",
        items=len(raw),
        psi=None,
        drifted=False,
        pvalue=test.pvalue,
        mmd=round(test.mmd2, 5),
        reference={"texts": len(reference.vectors)},
        window={"texts": len(texts)},
    )
