"""Rollout logic without processes: routing choices, windows, verdicts, settings."""

from __future__ import annotations

import bisect
import random

import pytest

from conveyor.durations import parse_duration
from conveyor.errors import InvalidInput
from conveyor.rollout.analysis.metric import MeasurementError, Traffic, Verdict, window_traffic
from conveyor.rollout.analysis.metrics.agreement import judge_agreement
from conveyor.rollout.analysis.metrics.traffic import judge_traffic
from conveyor.rollout.analysis.thresholds import Thresholds
from conveyor.rollout.config import parse_steps
from conveyor.router.routing import BackendSpec, RouteTable, pick
from conveyor.router.stats import LATENCY_BUCKETS, RouterStats, quantile

TABLE = RouteTable.model_validate(
    {
        "backends": [
            {"name": "stable", "url": "http://127.0.0.1:1", "version": "m:1", "weight": 80},
            {"name": "canary", "url": "http://127.0.0.1:2", "version": "m:2", "weight": 20},
        ]
    }
)


def test_pick_follows_weights_and_falls_back_to_the_healthy_backend() -> None:
    rng = random.Random(7)
    chosen = [pick(TABLE, {"stable", "canary"}, rng=rng)[0].name for _ in range(5000)]
    assert 0.17 < chosen.count("canary") / 5000 < 0.23
    assert [b.name for b in pick(TABLE, {"stable"}, rng=rng)] == ["stable"]  # ejected canary gets nothing
    assert [b.name for b in pick(TABLE, {"stable", "canary"}, pin="m:2")] == ["canary"]
    first = pick(TABLE, {"stable", "canary"}, sticky_key="user-1")[0].name
    assert all(pick(TABLE, {"stable", "canary"}, sticky_key="user-1")[0].name == first for _ in range(20))
    assert pick(RouteTable(), {"x"}) == []


def test_quantile_interpolates_inside_a_bucket() -> None:
    buckets = [0] * len(LATENCY_BUCKETS)
    buckets[LATENCY_BUCKETS.index(0.01)] = 100  # all between 7.5 ms and 10 ms
    assert 0.0075 < quantile(0.99, buckets) <= 0.01
    assert quantile(0.99, [0] * len(LATENCY_BUCKETS)) is None


def _traffic(requests: int, errors: int, seconds: float = 0.005) -> Traffic:
    stats = RouterStats().of("c", "v")
    for i in range(requests):
        stats.observe("500" if i < errors else "200", seconds)
    return Traffic(requests, errors, list(stats.buckets), {})


def test_too_few_requests_is_inconclusive_never_failed() -> None:
    verdict = Verdict()
    judge_traffic(verdict, _traffic(5, 5), _traffic(100, 0), Thresholds(), "canary")
    assert verdict.outcome == "inconclusive" and "5 canary requests" in verdict.reasons[0]


def test_error_rate_fails_absolute_and_relative_to_stable() -> None:
    absolute = Verdict()
    judge_traffic(absolute, _traffic(100, 20), _traffic(100, 0), Thresholds(), "canary")
    assert absolute.outcome == "failed" and "20.0%" in absolute.reasons[0]
    relative = Verdict()
    judge_traffic(relative, _traffic(100, 4), _traffic(100, 1), Thresholds(max_error_rate=0.1), "canary")
    assert relative.outcome == "failed" and "exceeds stable" in relative.reasons[0]
    fine = Verdict()
    judge_traffic(fine, _traffic(100, 1), _traffic(100, 1), Thresholds(), "canary")
    assert fine.outcome == "successful"


def _latencies(seconds: list[float]) -> Traffic:
    stats = RouterStats().of("c", "v")
    for value in seconds:
        stats.observe("200", value)
    return Traffic(len(seconds), 0, list(stats.buckets), {})


def test_a_slower_canary_fails_the_rank_test_from_a_hundred_samples() -> None:
    verdict = Verdict()
    judge_traffic(verdict, _traffic(100, 0, 0.2), _traffic(100, 0, 0.01), Thresholds(), "canary")
    assert verdict.outcome == "failed", verdict.reasons
    assert "median latency 175.0 ms over 2x stable's 8.8 ms (rank test p=" in verdict.reasons[0]
    assert "from 100 and 100 samples" in verdict.reasons[0]


def test_one_slow_request_among_58_is_not_a_p99_failure_but_inconclusive() -> None:
    rng = random.Random(3)
    stable = _latencies([rng.uniform(0.030, 0.048) for _ in range(174)])
    canary = _latencies([rng.uniform(0.030, 0.048) for _ in range(57)] + [0.121])  # the window
    verdict = Verdict()
    judge_traffic(verdict, canary, stable, Thresholds(), "canary")
    assert verdict.outcome == "inconclusive", verdict.reasons
    assert verdict.reasons == [
        f"inconclusive: canary p99 {verdict.measurements['canary_p99_ms']:.1f} ms over 2x stable's "
        f"{verdict.measurements['stable_p99_ms']:.1f} ms, but from 58 canary and 174 stable samples; "
        "p99 needs 500 of each"
    ]
    ceiling = Verdict()
    judge_traffic(ceiling, canary, None, Thresholds(max_p99_ms=60.0), "canary")
    assert ceiling.outcome == "inconclusive" and ceiling.reasons[0].endswith("but from 58 samples; p99 needs 500")


def test_p99_is_judged_from_enough_samples_and_the_sample_rule_is_a_setting() -> None:
    fast, slow = [0.010] * 590 + [0.012] * 10, [0.010] * 590 + [0.200] * 10  # the same median, a slow 1.7%
    verdict = Verdict()
    judge_traffic(verdict, _latencies(slow), _latencies(fast), Thresholds(), "canary")
    assert verdict.outcome == "failed" and "over 2x stable's" in verdict.reasons[0]
    assert verdict.reasons[0].endswith("(600 and 600 samples)")
    ceiling = Verdict()
    judge_traffic(ceiling, _latencies(slow), None, Thresholds(max_p99_ms=100.0), "canary")
    assert ceiling.outcome == "failed" and "over the limit 100 ms (600 samples)" in ceiling.reasons[0]
    stricter = Verdict()  # 10 samples beyond p99: 1,000 needed
    judge_traffic(stricter, _latencies(slow), _latencies(fast), Thresholds(latency_tail_samples=10), "canary")
    assert stricter.outcome == "inconclusive" and "p99 needs 1000 of each" in stricter.reasons[0]


def test_the_rank_test_matches_scipy_on_tied_histograms_and_needs_a_large_shift() -> None:
    from scipy.stats import mannwhitneyu

    from conveyor.rollout.analysis.latency import samples_needed, slower_p_value

    rng = random.Random(11)
    canary = [rng.lognormvariate(-4.0, 0.6) * 1.2 for _ in range(80)]
    stable = [rng.lognormvariate(-4.0, 0.6) for _ in range(240)]
    index = (
        [bisect.bisect_left(LATENCY_BUCKETS, x) for x in canary],
        [bisect.bisect_left(LATENCY_BUCKETS, x) for x in stable],
    )
    expected = mannwhitneyu(*index, alternative="greater", method="asymptotic").pvalue
    assert slower_p_value(_latencies(canary).buckets, _latencies(stable).buckets) == pytest.approx(expected, rel=1e-9)
    assert (samples_needed(0.99, 5), samples_needed(0.95, 5), samples_needed(0.5, 5)) == (500, 100, 10)
    shifted = Verdict()  # significantly slower, but by less than the ratio: not a failure
    judge_traffic(shifted, _latencies([0.040] * 400), _latencies([0.030] * 400), Thresholds(), "canary")
    assert shifted.outcome == "successful" and "latency_p_value" not in shifted.measurements


def test_agreement_needs_enough_comparisons() -> None:
    few, bad = Verdict(), Verdict()
    judge_agreement(few, 3, 0, Thresholds())
    judge_agreement(bad, 10, 40, Thresholds())
    assert few.outcome == "inconclusive" and bad.outcome == "failed"


def test_a_router_restart_inside_the_window_is_a_measurement_error() -> None:
    before, after = RouterStats().snapshot(), RouterStats().snapshot()
    with pytest.raises(MeasurementError, match="restarted"):
        window_traffic(before, after, "canary", "v", "live")


def test_steps_and_durations_are_validated() -> None:
    assert parse_steps("10,25,50,100") == [10, 25, 50, 100]
    assert parse_duration("500ms") == 0.5 and parse_duration("2m") == 120
    reasons = {"10,5": "must increase", "0,50": "above 0", "10,abc": "give percentages", "150": "at most 100"}
    for bad, reason in reasons.items():
        with pytest.raises(InvalidInput, match=reason):
            parse_steps(bad)
    with pytest.raises(InvalidInput, match=r"use e\.g\. 30s"):
        parse_duration("soon")


def test_a_table_without_backends_keeps_what_can_still_serve() -> None:
    table = RouteTable(
        backends=[
            BackendSpec(name="stable", url="http://127.0.0.1:1", version="v1", weight=75),
            BackendSpec(name="canary", url="http://127.0.0.1:2", version="v2", weight=25),
        ],
        mirror_percent=20,
        mirror_to="canary",
        sticky_header="X-User",
    )
    without_canary = table.without({"canary"})
    assert [(b.name, b.weight) for b in without_canary.backends] == [("stable", 100.0)]
    assert without_canary.mirror_to is None and without_canary.mirror_percent == 0
    assert without_canary.sticky_header == "x-user"
    assert table.without({"stable"}).backends == []  # a canary alone has nothing to be compared with
    assert table.without(set()) == table


def test_answers_of_every_task_reduce_to_their_label_or_value() -> None:
    from conveyor.router.predictions import read_predictions

    text = read_predictions("/predict", b'[{"positive": true}, {"positive": "false"}]')
    assert text is not None and text.labels == ["positive=true", 'positive="false"']
    tabular = b'[{"positive": true, "label": "positive", "probabilities": {"positive": 0.91, "negative": 0.09}}]'
    moved = b'[{"positive": true, "label": "positive", "probabilities": {"positive": 0.71, "negative": 0.29}}]'
    first, second = read_predictions("/predict", tabular), read_predictions("/predict", moved)
    assert first is not None and first.labels == ['label="positive"'] and first == second  # probabilities left out
    image = read_predictions("/predict", b'{"label": "seven", "score": 0.9, "top": []}')
    assert image is not None and image.labels == ['label="seven"']
    regression = read_predictions("/predict", b'[{"value": 151.5}, {"value": 3}]')
    assert regression is not None and regression.values == [151.5, 3.0] and regression.labels is None
    v2 = read_predictions("/v2/models/m/infer", b'{"outputs": [{"name": "value", "data": [1.5, 2.0]}]}')
    assert v2 is not None and v2.values == [1.5, 2.0]
    assert read_predictions("/v2/models/m/infer", b'{"outputs": [{"name": "logits", "data": [1.5]}]}') is None
    broken = read_predictions("/predict", b"{not json")
    assert broken is not None and broken.labels == ["unparseable"]


def test_regression_answers_agree_within_the_tolerance_and_labels_exactly() -> None:
    from conveyor.router.predictions import Predictions, agree

    stable = Predictions(values=[100.0, 0.0])
    assert agree(Predictions(values=[104.0, 0.0]), stable, 0.05, 0.0)
    assert not agree(Predictions(values=[106.0, 0.0]), stable, 0.05, 0.0)
    assert not agree(Predictions(values=[100.0, 0.01]), stable, 0.05, 0.0)  # no relative room around zero
    assert agree(Predictions(values=[100.0, 0.01]), stable, 0.05, 0.02)
    assert not agree(Predictions(values=[100.0]), stable, 0.05, 0.0)  # a batch of another size
    assert not agree(Predictions(labels=["label=1"]), stable, 1.0, 1.0)  # a label against a value
    assert agree(Predictions(labels=['label="a"']), Predictions(labels=['label="a"']), 0.0, 0.0)
    assert not agree(Predictions(labels=['label="b"']), Predictions(labels=['label="a"']), 1.0, 1.0)


def test_a_backend_says_how_it_runs_and_older_records_still_read() -> None:
    from conveyor.rollout.status import Backend

    assert Backend(ref="votes:2", version="votes:2").kind == "process"
    older = Backend.model_validate({"ref": "registry/votes:2", "version": "votes:2", "engine": "container"})
    assert older.kind == "container" and older.engine is None  # the old sentinel is not an engine name
    started = Backend.model_validate({"ref": "i", "version": "v", "container": "c1", "engine": "podman"})
    assert started.kind == "container" and started.engine == "podman"


def test_the_rollout_service_refuses_a_threshold_no_metric_declares(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from conveyor.rollout import service

    monkeypatch.chdir(tmp_path)  # no conveyor.yaml here
    typo = {"max_eror_rate": 0.1}
    with pytest.raises(InvalidInput, match=r"unknown threshold\(s\) \['max_eror_rate'\]; thresholds: .*max_error_rate"):
        service.export(service.ExportRequest("registry.example/votes:2", thresholds=typo))
    with pytest.raises(InvalidInput, match="max_eror_rate"):
        service.start(service.StartRequest("votes:2", router="http://127.0.0.1:9", thresholds=typo))
    text = service.export(service.ExportRequest("registry.example/votes:2", thresholds={"max_error_rate": 0.02}))
    assert "kind: AnalysisTemplate" in text and "0.02" in text


# A status record as Conveyor wrote it before thresholds became a mapping (every threshold a field
# of a model built from the metrics at import), with one threshold of a plugin metric no longer
# installed (max_gpu_ms) and without one added since (max_input_shift).
OLD_RECORD = """{
  "id": "4f2a9c1d8e7b", "service": "svc", "strategy": "canary", "ref": "votes:2", "model_name": "votes",
  "model_version": 2, "router": "http://127.0.0.1:9", "phase": "succeeded", "stage": "done",
  "message": "promoted", "steps": [10.0, 50.0, 100.0], "step_index": 2, "interval_s": 30.0,
  "rollback_window_s": 60.0, "weights": {"canary": 100.0},
  "stable": {"ref": "votes:1", "version": "votes:1", "url": "http://127.0.0.1:5001", "pid": 4141,
             "container": null, "engine": null, "log": null, "owned": true},
  "canary": {"ref": "votes:2", "version": "votes:2", "url": "http://127.0.0.1:5002", "pid": 4242,
             "container": null, "engine": null, "log": null, "owned": true},
  "command": null, "contract_path": null,
  "thresholds": {"min_requests": 50, "max_error_rate": 0.01, "max_error_rate_increase": 0.02, "max_p99_ms": 250.0,
                 "max_p99_ratio": 2.0, "p99_floor_ms": 25.0, "min_agreement": 0.9, "min_compared": 20,
                 "value_tolerance": 0.05, "value_tolerance_abs": 0.0, "max_prediction_shift": null,
                 "max_value_shift": null, "contract": false, "mirror_percent": 20.0, "max_inconclusive": 3,
                 "max_measurement_errors": 3, "max_gpu_ms": 12.5},
  "window": null, "analysis": [], "inconclusive_in_a_row": 0, "errors_in_a_row": 0, "abort_reason": null,
  "promoted_at": 1760000000.0, "previous_ref": "votes:1", "handled_command": 0, "commands": [],
  "created_at": 1760000000.0, "updated_at": 1760000100.0, "finished_at": 1760000100.0, "events": []
}"""


def test_an_old_status_record_loads_with_its_thresholds_whatever_metrics_are_installed() -> None:
    from conveyor.rollout.status import RolloutStatus

    status = RolloutStatus.model_validate_json(OLD_RECORD)
    limits = status.thresholds
    assert (limits.min_requests, limits.max_error_rate, limits.max_p99_ms, limits.contract) == (50, 0.01, 250.0, False)
    assert limits.max_input_shift is None  # not in the record: the metric's declared default
    assert limits["max_gpu_ms"] == 12.5  # a removed plugin's threshold is kept, not refused
    again = RolloutStatus.model_validate_json(status.model_dump_json())
    assert again.thresholds == limits and isinstance(again.thresholds, Thresholds)


def test_thresholds_are_checked_when_a_rollout_uses_them() -> None:
    from conveyor.rollout.analysis.thresholds import checked_thresholds

    limits = checked_thresholds({"max_error_rate": 0.1})
    assert limits.max_error_rate == 0.1 and limits.min_requests == 20 and "max_input_shift" in limits
    with pytest.raises(InvalidInput, match=r"rollout.thresholds.max_error_rate: Input should be less than or equal"):
        checked_thresholds({"max_error_rate": 3}, "rollout.thresholds")
    with pytest.raises(InvalidInput, match=r"unknown threshold\(s\) \['max_gpu_ms'\]"):
        checked_thresholds({"max_gpu_ms": 1})


def test_nothing_is_built_from_the_metrics_when_thresholds_are_imported() -> None:
    import subprocess
    import sys

    probe = (
        "import sys\n"
        "import conveyor.rollout.status, conveyor.rollout.config\n"
        "print(any(m.startswith('conveyor.rollout.analysis.metrics.') for m in sys.modules))\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True)
    assert done.stdout.strip() == "False"  # no metric module (nor a plugin's) is imported to load a record


def test_agreement_is_judged_against_the_measured_expectation_with_a_wilson_interval() -> None:
    from conveyor.rollout.analysis.expectation import ExpectedAgreement, wilson_interval
    from conveyor.rollout.analysis.metric import Verdict
    from conveyor.rollout.analysis.metrics.agreement import judge_agreement
    from conveyor.rollout.analysis.thresholds import checked_thresholds

    low, high = wilson_interval(17, 20)
    assert (round(low, 3), round(high, 3)) == (0.640, 0.948)  # the textbook Wilson interval of 17/20
    limits = checked_thresholds({"min_compared": 20})
    retrain = ExpectedAgreement(share=0.877, chance=0.34, items=300, source="m:2")

    reasons: list[str] = []

    def judged(agreed: int, compared: int, expected: ExpectedAgreement | None = retrain, **given: float) -> str:
        verdict = Verdict()
        judge_agreement(verdict, agreed, compared - agreed, checked_thresholds({"min_compared": 20, **given}), expected)
        reasons[:] = verdict.reasons
        return verdict.outcome

    assert retrain.bar(limits.agreement_tolerance, limits.min_agreement_over_chance) == pytest.approx(0.827)
    assert judged(83, 100) == "successful"  # 83% live: below the old fixed 0.9, as an honest retrain is
    assert judged(16, 20) == "inconclusive"  # 80% of 20: below the bar, but its interval reaches it
    assert "below the 82.7% bar (87.7% measured at start)" in reasons[0]  # the bar, never called "expected"
    assert judged(60, 100) == "failed"  # the whole interval (50% to 69%) is below the bar
    assert judged(10, 19) == "inconclusive"  # too few compared
    shuffled = ExpectedAgreement(share=0.35, chance=0.34, items=300, source="m:3")
    assert shuffled.bar(0.05, 0.5) == pytest.approx(0.67)  # chance is no expectation: the floor above it holds
    assert judged(35, 100, shuffled) == "failed"
    # the measurement at start is itself below the bar: a lucky 27 of 38 (71%) does not outvote 300 items
    assert judged(27, 38, shuffled) == "inconclusive"
    assert judged(95, 100, shuffled) == "successful"  # the live interval (89% to 98%) clears the bar
    assert judged(83, 100, None) == "failed"  # nothing measured: the fixed 0.9
    assert judged(83, 100, retrain, min_agreement=0.8) == "successful"  # an explicit bar replaces the measured one
    assert judged(83, 100, retrain, min_agreement=0.85) == "failed"
