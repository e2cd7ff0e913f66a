"""The value-shift analysis metric: a regressor's canary answers from the same distribution as stable."""

from __future__ import annotations

import numpy as np

from conveyor.rollout.analysis.metric import AnalysisWindow, Verdict
from conveyor.rollout.controller import CANARY, STABLE
from conveyor.router.stats import VALUES_KEPT, RouterStats
from tests.rollout_fakes import canary_window


def _window(canary: np.ndarray, stable: np.ndarray, earlier: np.ndarray | None = None, **limits: float):  # type: ignore[no-untyped-def]
    stats = RouterStats()
    if earlier is not None:  # answered before the window: must not count
        for value in earlier:
            stats.of(CANARY, "v2").observe("200", 0.004, None, [float(value)])
    before = stats.snapshot()
    for backend, version, values in ((CANARY, "v2", canary), (STABLE, "v1", stable)):
        for value in values:
            stats.of(backend, version).observe("200", 0.004, None, [float(value)])
    return canary_window(stats, before, **{"max_value_shift": 0.2, **limits})


def _measure(window: AnalysisWindow) -> Verdict:
    from conveyor.rollout.analysis.run import analyse

    return analyse(window)


RNG = np.random.default_rng(11)


def test_values_from_the_same_distribution_pass() -> None:
    verdict = _measure(_window(RNG.normal(100, 10, 300), RNG.normal(100, 10, 300)))
    assert verdict.outcome == "successful", verdict.reasons
    assert verdict.measurements["value_shift"] < 0.2


def test_a_canary_whose_values_moved_fails_naming_both_medians() -> None:
    verdict = _measure(_window(RNG.normal(115, 10, 300), RNG.normal(100, 10, 300)))
    assert verdict.outcome == "failed"
    assert verdict.measurements["value_shift"] > 0.4 and verdict.measurements["value_shift_p"] < 0.01
    assert any("distributed unlike stable's" in r and "canary median 11" in r for r in verdict.reasons)


def test_a_gap_that_few_answers_explain_is_not_a_failure() -> None:
    """KS 0.25 over 20 answers a side is well within chance (p ~ 0.5): a limit alone would fail it."""
    canary, stable = np.arange(20) + 5.0, np.arange(20, dtype=float)
    verdict = _measure(_window(canary, stable, min_requests=20))
    assert verdict.measurements["value_shift"] == 0.25 and verdict.outcome == "successful", verdict


def test_only_the_values_answered_inside_the_window_count() -> None:
    earlier = RNG.normal(500, 10, VALUES_KEPT // 2)  # a shifted past, before the window opened
    verdict = _measure(_window(RNG.normal(100, 10, 300), RNG.normal(100, 10, 300), earlier=earlier))
    assert verdict.outcome == "successful", verdict.reasons


def test_too_few_values_are_inconclusive_and_the_metric_is_off_by_default() -> None:
    few = _measure(_window(RNG.normal(0, 1, 5), RNG.normal(0, 1, 5), min_requests=20))
    assert few.outcome == "inconclusive" and any("needs 20 answered values" in r for r in few.reasons)
    off = _measure(_window(RNG.normal(9, 1, 300), RNG.normal(0, 1, 300), max_value_shift=None))  # type: ignore[arg-type]
    assert off.outcome == "successful" and "value_shift" not in off.measurements


def test_the_router_keeps_only_the_latest_values() -> None:
    stats = RouterStats()
    stats.of(CANARY, "v2").observe("200", 0.001, None, [float(i) for i in range(VALUES_KEPT + 10)])
    traffic = next(t for t in stats.snapshot()["traffic"] if t["backend"] == CANARY)
    assert traffic["values_seen"] == VALUES_KEPT + 10 and traffic["values"][0] == 10.0
    assert len(traffic["values"]) == VALUES_KEPT
