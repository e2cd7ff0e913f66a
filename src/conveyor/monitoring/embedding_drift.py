"""Embedding drift: do a window's texts mean what the reference's texts meant?

Length, words and tokens miss a change of subject: NYT editorials and movie reviews have much the
same lengths.  Sentence embeddings (the MiniLM encoder, ``conveyor/minilm.py``) place texts by
meaning, and a two-sample test on them asks whether the window's texts come from the
reference's distribution (Alibi Detect's ``MMDDrift`` and Evidently's embedding drift test do
the same):

- the reference: a seeded sample of up to ``SAMPLE`` texts embedded at profile time, reduced to
  its top ``COMPONENTS`` principal components (the centre and the components are kept, so a
  window is projected the same way), stored in the profile (tens of kB, not the 384-wide vectors);
- a window: a seeded sample of up to ``SAMPLE`` of its texts, embedded and projected;
- the statistic: the unbiased squared maximum mean discrepancy (MMD) with a Gaussian (RBF)
  kernel whose width is the median distance between the pooled points (the median heuristic);
- the p-value: the share of ``PERMUTATIONS`` seeded relabellings of the pooled points whose MMD
  is at least the observed one (with the usual +1 on both sides, so it is never 0).
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import numpy as np

SAMPLE = 500  # texts embedded per side: bounds the encoder's time and the kernel's size
COMPONENTS = 32
PERMUTATIONS = 2000  # p never below 1/2001: still significant after adjusting for a text model's 7 columns
DECIMALS = 5


@dataclass(frozen=True)
class Projection:
    center: np.ndarray  # [hidden]
    components: np.ndarray  # [k, hidden]

    def apply(self, embeddings: np.ndarray) -> np.ndarray:
        return np.asarray((embeddings - self.center) @ self.components.T, dtype=np.float64)


@dataclass(frozen=True)
class MmdResult:
    mmd2: float
    pvalue: float
    bandwidth: float


_encoder: Any = None
_seen: OrderedDict[str, np.ndarray] = OrderedDict()
REMEMBERED = 5000  # texts whose embeddings are kept (the reference's halves are judged many times)


def embed(texts: list[str]) -> np.ndarray:
    """Sentence embeddings of ``texts`` by the process's one MiniLM encoder (loaded when first
    needed); a text embedded lately is not embedded again."""
    global _encoder
    if _encoder is None:
        from conveyor.minilm import SentenceEncoder

        _encoder = SentenceEncoder()
    new = list(dict.fromkeys(t for t in texts if t not in _seen))
    if new:
        for text, vector in zip(new, _encoder.embed(new), strict=True):
            _seen[text] = vector
    for text in texts:
        _seen.move_to_end(text)
    while len(_seen) > REMEMBERED:
        _seen.popitem(last=False)
    return np.stack([_seen[t] for t in texts]) if texts else np.zeros((0, 0), dtype=np.float32)


def sample_texts(texts: list[Any], seed: int = 0, size: int = SAMPLE) -> list[str]:
    strings = [t for t in texts if isinstance(t, str)]
    if len(strings) <= size:
        return strings
    picked = np.random.default_rng(seed).choice(len(strings), size, replace=False)
    return [strings[i] for i in sorted(picked)]


def fit_projection(embeddings: np.ndarray, components: int = COMPONENTS) -> Projection:
    """The reference's principal directions: where its texts differ most from each other."""
    center = embeddings.mean(axis=0)
    centred = np.asarray(embeddings - center, dtype=np.float64)
    # from the texts' Gram matrix (n x n, n <= SAMPLE): several times cheaper than an SVD of the
    # n x 384 embeddings, and the self-check fits one per split
    variances, vectors = np.linalg.eigh(centred @ centred.T)
    top = np.argsort(variances)[::-1][:components]
    top = top[variances[top] > 1e-9 * max(float(variances.max()), 1e-12)]
    directions = (centred.T @ vectors[:, top]) / np.sqrt(variances[top])
    return Projection(center=center, components=directions.T)


def mmd_test(reference: np.ndarray, window: np.ndarray, seed: int = 0, permutations: int = PERMUTATIONS) -> MmdResult:
    """Unbiased MMD^2 with an RBF kernel (median heuristic) and its permutation p-value."""
    pooled = np.vstack([reference, window]).astype(np.float64)
    squared = np.sum(pooled**2, axis=1)
    distances = np.maximum(squared[:, None] + squared[None, :] - 2 * pooled @ pooled.T, 0.0)
    off_diagonal = distances[~np.eye(len(pooled), dtype=bool)]
    bandwidth = float(np.sqrt(np.median(off_diagonal))) or 1.0
    kernel = np.exp(-distances / (2 * bandwidth**2))
    np.fill_diagonal(kernel, 0.0)
    m = len(reference)
    rng = np.random.default_rng(seed)
    # column 0: the observed split; the others: the same points relabelled at random
    labels = np.zeros((len(pooled), permutations + 1), dtype=np.float64)
    labels[:m, 0] = 1.0
    for p in range(1, permutations + 1):
        labels[rng.permutation(len(pooled))[:m], p] = 1.0
    statistics = _mmd2(kernel, labels, m, len(pooled) - m)
    observed = float(statistics[0])
    pvalue = (1 + int(np.sum(statistics[1:] >= observed))) / (1 + permutations)
    return MmdResult(mmd2=observed, pvalue=pvalue, bandwidth=bandwidth)


def _mmd2(kernel: np.ndarray, labels: np.ndarray, m: int, n: int) -> np.ndarray:
    """MMD^2 of each column's split (1 = first sample) of a zero-diagonal kernel matrix, all at once."""
    others = 1.0 - labels
    spread = kernel @ labels
    within_first = np.sum(labels * spread, axis=0)
    across = np.sum(others * spread, axis=0)
    within_second = np.sum(others * (kernel @ others), axis=0)
    return within_first / (m * (m - 1)) + within_second / (n * (n - 1)) - 2 * across / (m * n)
