"""How often do the drift thresholds cry wolf?  Measured on the reference itself, at profile time.

Two random halves of the reference come from one distribution, so any drift the test finds
between them is a false alarm.  The reference is split ``SPLITS`` times (seeded); each time the
first half is profiled and the second judged against it, exactly as a window of traffic is
(``drift.compare``: every column, Benjamini-Hochberg across them).  The count of splits that
raised an alarm is kept in the profile (``Profile.self_check``) and shown by ``conveyor monitor``:
a rate well above ``alpha`` says the thresholds are too tight for this data (small halves, a
lumpy column) before a single real window is judged.

An embedding column is split within the texts its profile embedded (at most
``embedding_drift.SAMPLE``): they are embedded once, and each half is judged on them.
"""

from __future__ import annotations

from collections import Counter

import numpy as np

from conveyor.monitoring.drift import compare
from conveyor.monitoring.embedding_drift import sample_texts
from conveyor.monitoring.estimate import QualityReference
from conveyor.monitoring.features import Column, Columns
from conveyor.monitoring.profile import Profile, SelfCheck, profile_of
from conveyor.monitoring.thresholds import Thresholds

SPLITS = 20


def checked_profile(
    columns: Columns,
    source: str,
    thresholds: Thresholds | None = None,
    seed: int = 0,
    quality: QualityReference | None = None,
) -> Profile:
    """The reference's profile, with its false-alarm rate between halves measured at ``thresholds``."""
    profile = profile_of(columns, source, seed, quality=quality)
    profile.self_check = self_check(columns, thresholds or Thresholds(), seed=seed)
    return profile


def self_check(columns: Columns, thresholds: Thresholds, splits: int = SPLITS, seed: int = 0) -> SelfCheck:
    rng = np.random.default_rng(seed)
    alarms, by_column = 0, Counter[str]()
    for split in range(splits):
        first, second = Columns(), Columns()
        for name, column in columns.by_name.items():
            values = sample_texts(column.values, seed) if column.kind == "embedding" else column.values
            order = rng.permutation(len(values))
            half = len(values) // 2
            first.by_name[name] = Column(name, column.kind, column.side, [values[i] for i in order[:half]])
            second.by_name[name] = Column(name, column.kind, column.side, [values[i] for i in order[half:]])
        drifted = [
            c.name for c in compare(profile_of(first, "half", seed + split), second, thresholds, split) if c.drifted
        ]
        alarms += bool(drifted)
        by_column.update(drifted)
    return SelfCheck(
        splits=splits,
        half=columns.items // 2,
        false_alarms=alarms,
        psi=thresholds.psi,
        alpha=thresholds.alpha,
        columns=dict(by_column),
    )
