"""The input-shift analysis metric: canary and stable asked the same kind of questions, feature by feature.

Unit level, over real router statistics (``RouterStats`` snapshots, as the controller reads them);
``tests/test_router.py`` checks that a router notes the inputs only while a canary splits traffic.
"""

from __future__ import annotations

import numpy as np

from conveyor.rollout.analysis.metric import AnalysisWindow, Verdict
from conveyor.rollout.controller import CANARY, STABLE
from conveyor.router.inputs import input_features
from conveyor.router.stats import RouterStats
from tests.rollout_fakes import canary_window

RNG = np.random.default_rng(5)


def _body(ages: np.ndarray) -> bytes:
    import orjson

    return orjson.dumps([{"age": float(a), "bmi": 25.0 + float(a) % 3, "sex": "male"} for a in ages])


def _window(canary: list[bytes], stable: list[bytes], earlier: list[bytes] = (), **limits: float) -> AnalysisWindow:  # type: ignore[assignment]
    stats = RouterStats()
    for body in earlier:  # noted before the window opened: must not count
        stats.of(CANARY, "v2").observe_inputs(input_features(body))
    before = stats.snapshot()
    for backend, version, bodies in ((CANARY, "v2", canary), (STABLE, "v1", stable)):
        for body in bodies:
            stats.of(backend, version).observe("200", 0.004, ['label="low"'])
            stats.of(backend, version).observe_inputs(input_features(body))
    return canary_window(stats, before, **{"max_input_shift": 0.2, **limits})


def _measure(window: AnalysisWindow) -> Verdict:
    from conveyor.rollout.analysis.run import analyse

    return analyse(window)


def _bodies(mean: float, requests: int = 60) -> list[bytes]:
    return [_body(RNG.normal(mean, 8, 5)) for _ in range(requests)]


def test_one_population_split_at_random_is_a_fair_comparison() -> None:
    verdict = _measure(_window(_bodies(50), _bodies(50)))
    assert verdict.outcome == "successful", verdict.reasons
    assert verdict.measurements["input_shift"] < 0.2 and verdict.measurements["input_shift_feature"].startswith(
        "feature."
    )


def test_a_canary_asked_about_older_patients_is_inconclusive_naming_the_feature() -> None:
    verdict = _measure(_window(_bodies(70), _bodies(50)))
    assert verdict.outcome == "inconclusive", verdict.reasons
    assert verdict.measurements["input_shift_feature"] == "feature.age" and verdict.measurements["input_shift"] > 0.5
    (reason,) = [r for r in verdict.reasons if "different inputs" in r]
    assert "feature.age" in reason and "sticky routing" in reason


def test_texts_are_compared_by_length_and_only_numbers_inside_the_window_count() -> None:
    short = [b'["good day", "fine"]'] * 40
    long = [b'["a long and winding review of a film that went on for hours", "more words here too"]'] * 40
    earlier = long * 20  # before the window: the canary was asked long texts, then the split was fixed
    assert _measure(_window(short, short, earlier=earlier)).outcome == "successful"
    verdict = _measure(_window(long, short))
    assert verdict.outcome == "inconclusive" and verdict.measurements["input_shift_feature"].startswith("text.")


def test_too_few_inputs_are_inconclusive_and_the_metric_is_off_by_default() -> None:
    few = _measure(_window(_bodies(50, 2), _bodies(50, 2)))
    assert few.outcome == "inconclusive" and any("input shift needs" in r for r in few.reasons)
    off = _measure(_window(_bodies(70), _bodies(50), max_input_shift=None))
    assert "input_shift" not in off.measurements


def test_bodies_that_are_not_classic_json_note_nothing() -> None:
    assert input_features(b"\x89PNG...") == {}
    assert input_features(b"not json") == {}
    assert input_features(b'{"inputs": [{"name": "x"}]}') == {}
    assert input_features(b'{"instances": [{"age": 3, "flag": true}]}') == {"feature.age": [3.0]}
