"""The rollout state machine against fakes: every stage transition, in milliseconds.

The controller's edges (router client, backend launcher, alias mover, clock) are injected;
here they are in-memory fakes around the real status store, the real router statistics and
the real analysis metrics.  tests/test_rollout.py keeps end-to-end runs with real processes.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from conveyor.rollout.controller import CANARY, STABLE
from conveyor.router.stats import RouterStats
from tests.rollout_fakes import INTERVAL, Crash, make_rig

# -- canary -----------------------------------------------------------------------------------------------


def test_a_healthy_canary_walks_every_step_then_is_promoted(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rig = make_rig(tmp_path, monkeypatch)
    seen_weights = []

    def traffic() -> None:
        seen_weights.append(rig.router.weights())
        rig.window()

    final = rig.until(lambda s: not s.active, traffic)
    assert final.phase == "succeeded" and final.stage == "done"
    assert [(run.weight, run.outcome) for run in final.analysis] == [(25, "successful"), (50, "successful")]
    assert {"stable": 75.0, "canary": 25.0} in seen_weights and {"stable": 50.0, "canary": 50.0} in seen_weights
    assert [(b.name, b.url, b.weight) for b in rig.router.table.backends] == [(STABLE, "http://v2.fake:5002", 100.0)]
    assert rig.router.table.mirror_percent == 0.0
    assert rig.backends.launched == ["v2"] and rig.backends.stopped == ["v1"]  # the old stable stops at the end
    assert rig.moved == ["2"] and final.previous_ref == "v1"


def test_mirroring_is_set_while_the_canary_takes_part_of_the_traffic(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rig = make_rig(tmp_path, monkeypatch, mirror_percent=30.0)
    rig.until(lambda s: s.stage == "canary")
    assert rig.router.table.mirror_percent == 30.0 and rig.router.table.mirror_to == CANARY


def test_an_erroring_canary_is_rolled_back_and_stopped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rig = make_rig(tmp_path, monkeypatch)
    final = rig.until(lambda s: not s.active, lambda: rig.window(healthy=40, errors=8))
    assert final.phase == "aborted" and "error rate 20.0% over the limit 5.0%" in (final.abort_reason or "")
    assert rig.router.weights() == {STABLE: 100.0}
    assert rig.backends.stopped == ["v2"] and rig.moved == []
    assert len(final.analysis) == 1  # the first window decides


def test_a_slow_canary_fails_on_p99_against_stable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rig = make_rig(tmp_path, monkeypatch)
    final = rig.until(lambda s: not s.active, lambda: rig.window(seconds=0.8))
    assert final.phase == "aborted" and "over 2x stable's" in (final.abort_reason or "")


def test_disagreeing_predictions_on_mirrored_traffic_roll_back(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rig = make_rig(tmp_path, monkeypatch)

    def inverted() -> None:
        rig.router.serve(STABLE, "v1", 30)
        rig.router.serve(CANARY, "v2", 30)
        rig.router.compare("v2", agreed=0, disagreed=20)
        rig.clock.sleep(INTERVAL + 0.1)

    final = rig.until(lambda s: not s.active, inverted)
    assert final.phase == "aborted" and "agree with stable on 0.0%" in (final.abort_reason or "")
    assert final.analysis[-1].measurements["agreement"] == 0.0


def test_low_traffic_is_inconclusive_then_pauses_and_resume_opens_a_fresh_window(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rig = make_rig(tmp_path, monkeypatch, max_inconclusive=2)
    paused = rig.until(lambda s: s.phase == "paused", lambda: rig.window(healthy=3))
    assert [run.outcome for run in paused.analysis] == ["inconclusive", "inconclusive"]
    assert "3 canary requests in the window; at least 10" in paused.analysis[0].reasons[0]
    assert rig.router.weights() == {STABLE: 75.0, CANARY: 25.0}  # traffic held where it was
    controller = rig.controller()
    rig.window()
    assert controller.reconcile().phase == "paused"  # no analysis while paused
    assert len(rig.status().analysis) == 2
    rig.store.command("resume", "from the dashboard by dana")
    resumed = controller.reconcile()
    assert any(e.message == "resumed by a user (from the dashboard by dana)" for e in resumed.events)
    assert resumed.phase == "progressing" and resumed.inconclusive_in_a_row == 0
    final = rig.until(lambda s: not s.active)
    assert final.phase == "succeeded"


def test_promote_skips_to_the_next_step_and_promote_full_to_the_end(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rig = make_rig(tmp_path, monkeypatch, steps=(10, 20, 50, 100))
    rig.until(lambda s: s.stage == "canary")
    rig.store.command("promote", "looks fine")
    status = rig.controller().reconcile()
    assert status.step_index == 1 and rig.router.weights()[CANARY] == 20.0
    assert any("step 1 promoted by a user (looks fine)" in e.message for e in status.events)
    rig.store.command("promote-full")
    final = rig.controller().reconcile()
    assert final.phase == "succeeded" and rig.router.weights() == {STABLE: 100.0}


def test_abort_by_a_user_rolls_back_at_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rig = make_rig(tmp_path, monkeypatch)
    rig.until(lambda s: s.stage == "canary")
    rig.store.command("abort", "wrong version")
    final = rig.controller().reconcile()
    assert final.phase == "aborted" and final.abort_reason == "aborted by a user (wrong version)"
    said = [e.message for e in final.events if "aborted" in e.message]
    assert said and said[-1].startswith("aborted by a user (wrong version); "), said  # said once, not nested
    assert rig.router.weights() == {STABLE: 100.0} and rig.backends.stopped == ["v2"]


def test_a_canary_that_exits_aborts_the_rollout(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rig = make_rig(tmp_path, monkeypatch)
    rig.until(lambda s: s.stage == "canary")
    rig.backends.dead.add("v2")
    final = rig.controller().reconcile()
    assert final.phase == "aborted" and final.abort_reason == "the canary backend (v2) exited"
    assert rig.router.weights() == {STABLE: 100.0}


def test_a_canary_that_never_gets_ready_aborts_before_any_traffic(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rig = make_rig(tmp_path, monkeypatch)
    rig.backends.never_ready = True
    final = rig.controller().reconcile()
    assert final.phase == "aborted" and "did not become ready" in (final.abort_reason or "")
    assert all(CANARY not in {b.name for b in t.backends} for t in rig.router.tables)


def test_measurement_errors_are_tolerated_up_to_the_limit_then_abort(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rig = make_rig(tmp_path, monkeypatch, max_measurement_errors=2)
    rig.until(lambda s: s.stage == "canary")
    controller = rig.controller()
    rig.router.unreachable = 2
    assert controller.reconcile().errors_in_a_row == 1
    assert controller.reconcile().errors_in_a_row == 2
    assert controller.reconcile().phase == "progressing"  # the router is back (errors count until an analysis)
    rig.router.unreachable = 100
    status = controller.reconcile()
    assert status.errors_in_a_row == 3 and "3 measurement errors in a row" in (status.abort_reason or "")
    assert "cannot roll back yet" in status.message and status.active  # it keeps trying until the router answers
    rig.router.unreachable = 0
    final = controller.reconcile()
    assert final.phase == "aborted" and rig.router.weights() == {STABLE: 100.0}


def test_a_router_restart_inside_a_window_is_a_measurement_error_not_a_verdict(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rig = make_rig(tmp_path, monkeypatch)
    rig.until(lambda s: s.window is not None and s.stage == "canary")
    rig.router.stats_ = RouterStats()  # a new router instance: counters from zero
    rig.window()
    status = rig.controller().reconcile()
    assert status.errors_in_a_row == 1 and "router restarted" in status.message and status.analysis == []


def test_the_first_version_of_a_service_takes_all_traffic_at_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rig = make_rig(tmp_path, monkeypatch, with_stable=False)
    final = rig.controller().reconcile()
    assert final.phase == "succeeded" and final.analysis == []
    assert [(b.name, b.url, b.weight) for b in rig.router.table.backends] == [(STABLE, "http://v2.fake:5002", 100.0)]


# -- blue-green -------------------------------------------------------------------------------------------


def test_blue_green_judges_mirrored_traffic_switches_and_promotes_after_the_window(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rig = make_rig(tmp_path, monkeypatch, strategy="blue-green", mirror_percent=100.0)
    switched = rig.until(lambda s: s.stage == "post-promotion")
    assert [run.stage for run in switched.analysis] == ["pre-promotion"]
    assert rig.router.weights() == {STABLE: 0.0, CANARY: 100.0} and rig.router.table.mirror_percent == 0.0
    assert rig.backends.stopped == []  # blue kept for the rollback window
    final = rig.until(lambda s: not s.active)
    assert final.phase == "succeeded" and any("rollback window passed" in e.message for e in final.events)
    assert rig.backends.stopped == ["v1"] and rig.moved == ["2"]


def test_blue_green_switches_back_when_green_fails_inside_the_rollback_window(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rig = make_rig(tmp_path, monkeypatch, strategy="blue-green")
    rig.until(lambda s: s.stage == "post-promotion")
    final = rig.until(lambda s: not s.active, lambda: rig.window(healthy=40, errors=10))
    assert final.phase == "aborted" and "error rate" in (final.abort_reason or "")
    assert rig.router.weights() == {STABLE: 100.0} and rig.backends.stopped == ["v2"] and rig.moved == []


def test_blue_green_promote_by_hand_switches_before_the_analysis(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rig = make_rig(tmp_path, monkeypatch, strategy="blue-green")
    rig.until(lambda s: s.stage == "pre-promotion")
    rig.store.command("promote")
    status = rig.controller().reconcile()
    assert status.stage == "post-promotion" and rig.router.weights() == {STABLE: 0.0, CANARY: 100.0}


# -- crashes ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("stage", ["starting", "canary", "promoting", "aborting"])
def test_a_controller_killed_at_any_stage_is_resumed_by_a_new_one(
    stage: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rig = make_rig(tmp_path, monkeypatch)
    if stage == "starting":  # killed after recording the launched backend, before it was ready
        rig.backends.wait_ready = lambda backend, timeout: (_ for _ in ()).throw(Crash())  # type: ignore[method-assign]
        with pytest.raises(Crash):
            rig.controller().reconcile()
        assert rig.status().canary.pid == 4242 and rig.status().stage == "starting"
        del rig.backends.wait_ready
    elif stage == "canary":  # killed between windows of the second step
        rig.until(lambda s: s.step_index == 1 and s.window is not None)
    elif stage == "promoting":  # killed while moving the traffic to the new version
        rig.router.crash_on_set = lambda table: table.backends[0].url == "http://v2.fake:5002"
        with pytest.raises(Crash):
            rig.until(lambda s: not s.active)
        assert rig.status().stage == "promoting"
    else:  # killed while rolling back
        rig.router.crash_on_set = lambda table: [b.name for b in table.backends] == [STABLE]
        with pytest.raises(Crash):
            rig.until(lambda s: not s.active, lambda: rig.window(healthy=40, errors=20))
        assert rig.status().stage == "aborting"
    before = rig.status()
    final = rig.until(lambda s: not s.active)  # a new controller, from the record alone
    assert rig.backends.launched == ["v2"]  # the canary was never started twice
    assert final.phase == ("aborted" if stage == "aborting" else "succeeded"), final.message
    if stage == "canary":
        assert all(run.step >= 1 for run in final.analysis[len(before.analysis) :])  # no step ran again
    expected = {STABLE: 100.0}
    assert rig.router.weights() == expected
    url = "http://v1.fake:5001" if stage == "aborting" else "http://v2.fake:5002"
    assert rig.router.table.backends[0].url == url


def test_a_second_controller_for_the_same_service_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from conveyor.errors import ConveyorError

    rig = make_rig(tmp_path, monkeypatch)
    with rig.store.controller_lock() as acquired:
        assert acquired
        with pytest.raises(ConveyorError, match="already running"):
            rig.controller().run()


@pytest.mark.parametrize("stage", ["pre-promotion", "post-promotion"])
def test_a_blue_green_controller_killed_at_its_stages_is_resumed_by_a_new_one(
    stage: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rig = make_rig(tmp_path, monkeypatch, strategy="blue-green")
    if stage == "pre-promotion":  # killed while switching: the record says post-promotion was not reached
        rig.router.crash_on_set = lambda table: {b.name: b.weight for b in table.backends}.get(CANARY) == 100.0
        with pytest.raises(Crash):
            rig.until(lambda s: s.stage == "post-promotion")
        assert rig.status().stage == "pre-promotion"
    else:  # killed inside the rollback window
        rig.until(lambda s: s.stage == "post-promotion" and s.window is not None)
    final = rig.until(lambda s: not s.active)
    assert final.phase == "succeeded" and rig.backends.launched == ["v2"]
    assert [(b.name, b.url, b.weight) for b in rig.router.table.backends] == [(STABLE, "http://v2.fake:5002", 100.0)]
