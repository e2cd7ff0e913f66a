"""The statistics a window is judged with, in numpy and the standard library alone.

``conveyor monitor``, the drift trigger and the dashboard judge windows in short-lived processes,
where importing ``scipy.stats`` cost more than the judgement itself (over a second of CPU and
about 50 MB on every call).  The few statistics monitoring uses are small:

* ``ks_2samp``: the two-sample Kolmogorov-Smirnov statistic and its exact two-sided p-value, the
  share of the lattice paths from (0, 0) to (n, m) that leave the band the statistic draws
  (counted row by row, rescaled as it grows), for every sample size;
* ``chi2_contingency_pvalue``: Pearson's chi-square test of homogeneity on a table of counts
  (Yates' correction at one degree of freedom), its p-value from the chi-square survival
  function, which for the integer degrees of freedom of a table has a closed form;
* ``benjamini_hochberg``: the step-up adjustment of a family of p-values;
* ``jensen_shannon``: the Jensen-Shannon distance of two share vectors (base 2);
* ``wilson``: the Wilson score interval of a proportion;
* ``percentile_bootstrap``: a seeded, paired percentile bootstrap of a vectorised statistic.

They return what ``scipy.stats`` returns for the same input (``tests/test_monitor_statistics.py``
checks them against it) up to rounding; the KS p-value is exact beyond the 10,000 items where
scipy switches to an approximation.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

Z95 = 1.959963984540054  # the normal distribution's 97.5% quantile
RESCALE_EVERY = 16  # rows of the path count between rescalings (each row grows it at most n-fold)


def ks_2samp(first: np.ndarray, second: np.ndarray) -> tuple[float, float]:
    """The two-sample KS statistic (the largest gap between the two empirical CDFs) and its exact
    two-sided p-value."""
    a, b = np.sort(np.asarray(first, dtype=np.float64)), np.sort(np.asarray(second, dtype=np.float64))
    n, m = len(a), len(b)
    if not n or not m:
        raise ValueError("a KS test needs two non-empty samples")
    both = np.concatenate([a, b])
    gaps = np.searchsorted(a, both, side="right") / n - np.searchsorted(b, both, side="right") / m
    statistic = float(max(np.max(gaps), np.clip(-np.min(gaps), 0, 1)))
    return statistic, _ks_pvalue(n, m, statistic)


def _ks_pvalue(n: int, m: int, statistic: float) -> float:
    """P(D >= statistic) for samples of ``n`` and ``m``: one minus the share of the monotone lattice
    paths from (0, 0) to (n, m) on which every point keeps |x/n - y/m| below the statistic."""
    g = math.gcd(n, m)
    lcm = n // g * m
    h = round(statistic * lcm)
    if h == 0:
        return 1.0
    if n > m:
        n, m = m, n  # rows: the smaller sample
    bound = h * g  # inside: |x*m - y*n| < bound

    def band(x: int) -> tuple[int, int]:
        low = (x * m - bound) // n + 1
        high = -((-(x * m + bound)) // n) - 1
        return max(low, 0), min(high, m)

    paths = np.zeros(m + 1, dtype=np.float64)
    low, high = band(0)
    paths[low : high + 1] = 1.0
    log_scale = 0.0
    cumsum = np.cumsum
    for x in range(1, n + 1):
        new_low = max((x * m - bound) // n + 1, 0)
        new_high = min(-((-(x * m + bound)) // n) - 1, m)
        if new_low > low:
            paths[low:new_low] = 0.0  # below the band from this row on
        row = paths[new_low : new_high + 1]
        cumsum(row, out=row)
        low, high = new_low, new_high
        if x % RESCALE_EVERY == 0 or x == n:
            top = float(row.max())
            if top <= 0:
                return 1.0
            row /= top
            log_scale += math.log(top)
    inside = paths[m]
    if inside <= 0:
        return 1.0
    log_total = math.lgamma(n + m + 1) - math.lgamma(n + 1) - math.lgamma(m + 1)
    share = math.exp(math.log(inside) + log_scale - log_total)
    return min(max(1.0 - share, 0.0), 1.0)


def chi2_sf(statistic: float, dof: int) -> float:
    """The chi-square survival function at integer degrees of freedom (a table's)."""
    if statistic <= 0:
        return 1.0
    half = statistic / 2
    if dof % 2 == 0:  # a Poisson tail: e^-h * sum h^i / i!, i < dof/2
        terms = [-half + i * math.log(half) - math.lgamma(i + 1) for i in range(dof // 2)]
        return min(1.0, sum(math.exp(t) for t in terms))
    tail = math.erfc(math.sqrt(half))  # one degree of freedom, then the half-integer terms
    terms = [-half + (i - 0.5) * math.log(half) - math.lgamma(i + 0.5) for i in range(1, (dof - 1) // 2 + 1)]
    return min(1.0, tail + sum(math.exp(t) for t in terms))


def chi2_contingency_pvalue(counts: np.ndarray) -> float:
    """Pearson's chi-square test of independence of a table of counts (rows: the samples), with
    Yates' continuity correction at one degree of freedom; 1.0 where the table has none."""
    observed = np.asarray(counts, dtype=np.float64)
    total = observed.sum()
    expected = np.outer(observed.sum(axis=1), observed.sum(axis=0)) / total
    dof = (observed.shape[0] - 1) * (observed.shape[1] - 1)
    if dof == 0:
        return 1.0
    if dof == 1:
        gap = expected - observed
        observed = observed + np.sign(gap) * np.minimum(0.5, np.abs(gap))
    statistic = float(np.sum((observed - expected) ** 2 / expected))
    return chi2_sf(statistic, dof)


def benjamini_hochberg(pvalues: Sequence[float]) -> np.ndarray:
    """The Benjamini-Hochberg adjusted p-values (step-up, capped at 1), in the given order."""
    p = np.clip(np.asarray(pvalues, dtype=np.float64), 0.0, 1.0)
    order = np.argsort(p)
    scaled = p[order] * len(p) / np.arange(1, len(p) + 1)
    adjusted = np.minimum.accumulate(scaled[::-1])[::-1]
    result = np.empty_like(p)
    result[order] = np.minimum(adjusted, 1.0)
    return result


def jensen_shannon(p: np.ndarray, q: np.ndarray) -> float:
    """The Jensen-Shannon distance (base 2) of two share vectors (each normalised to sum to 1)."""
    p = np.asarray(p, dtype=np.float64) / np.sum(p)
    q = np.asarray(q, dtype=np.float64) / np.sum(q)
    mean = (p + q) / 2

    def divergence(x: np.ndarray) -> float:
        present = x > 0
        return float(np.sum(x[present] * np.log(x[present] / mean[present])))

    return math.sqrt(max((divergence(p) + divergence(q)) / 2, 0.0) / math.log(2))


def wilson(successes: int, trials: int, z: float = Z95) -> tuple[float, float]:
    """The Wilson score interval of ``successes / trials`` (no continuity correction)."""
    share = successes / trials
    denominator = 1 + z * z / trials
    centre = (share + z * z / (2 * trials)) / denominator
    half = z * math.sqrt(share * (1 - share) / trials + z * z / (4 * trials * trials)) / denominator
    low = 0.0 if successes == 0 else max(0.0, centre - half)
    high = 1.0 if successes == trials else min(1.0, centre + half)
    return low, high


def percentile_bootstrap(
    statistic: Callable[..., Any], samples: Sequence[np.ndarray], resamples: int, confidence: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """The percentile bootstrap interval of a vectorised ``statistic`` (it takes ``axis``) over paired
    ``samples``: every sample resampled by the same seeded indices, all at once."""
    n = len(samples[0])
    indices = np.random.default_rng(seed).integers(0, n, (resamples, n))
    values = np.asarray(statistic(*(np.asarray(s)[..., indices] for s in samples), axis=-1))
    tail = (1 - confidence) / 2 * 100
    return np.percentile(values, tail, axis=-1), np.percentile(values, 100 - tail, axis=-1)


def isotonic_fit(x: np.ndarray, y: np.ndarray) -> tuple[list[float], list[float]]:
    """The non-decreasing least-squares fit of ``y`` on ``x`` (pool adjacent violators, values in
    [0, 1]): its knots (each distinct ``x``) and fitted values, to be read back by linear
    interpolation, clipped at the ends (``isotonic_predict``), as scikit-learn's
    ``IsotonicRegression(y_min=0, y_max=1, out_of_bounds="clip")`` predicts."""
    xs, inverse = np.unique(np.asarray(x, dtype=np.float64), return_inverse=True)
    weights = np.bincount(inverse).astype(np.float64)
    means = np.bincount(inverse, weights=np.asarray(y, dtype=np.float64)) / weights
    blocks: list[list[float]] = []  # [mean, weight, count of knots]
    for mean, weight in zip(means.tolist(), weights.tolist(), strict=True):
        blocks.append([mean, weight, 1])
        while len(blocks) > 1 and blocks[-2][0] > blocks[-1][0]:
            last = blocks.pop()
            before = blocks[-1]
            total = before[1] + last[1]
            blocks[-1] = [(before[0] * before[1] + last[0] * last[1]) / total, total, before[2] + last[2]]
    fitted = np.repeat([b[0] for b in blocks], [int(b[2]) for b in blocks])
    return xs.tolist(), np.clip(fitted, 0.0, 1.0).tolist()


def isotonic_predict(knots: Sequence[float], values: Sequence[float], x: np.ndarray) -> np.ndarray:
    """An ``isotonic_fit`` read at ``x``: linear between the knots, the end values beyond them."""
    return np.interp(np.asarray(x, dtype=np.float64), np.asarray(knots), np.asarray(values))
