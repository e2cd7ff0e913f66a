"""Controlled rollouts end to end: real routers, real backends and real controllers on 127.0.0.1."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.conftest import REPO
from tests.registry_fixtures import run_cli
from tests.rollout_fixtures import Load, Proc, admin, env, fake_command, start_fake, status_of, wait_for

# Small windows; and p99 is judged only above 2 s: these tests share two cores with other test
# workers, so a healthy canary's p99 can be several times stable's. The p99 verdicts themselves
# are tested against fakes (test_rollout_controller.py).
FAST = ["--min-requests", "10", "--min-compared", "5", "--p99-floor-ms", "2000"]


def put_routes(router: Proc, table: dict) -> httpx.Response:
    return httpx.put(router.url + "/_conveyor/routes", json=table, headers=admin(router.url), timeout=5)


def first_version(router: Proc, mode: str = "healthy") -> None:
    run_cli("rollout", "start", "v1", "--service", "svc", "--command", fake_command(mode), check=True)


def rollout(*args: str) -> subprocess.CompletedProcess[str]:
    return run_cli("rollout", "start", *args)


def reasons(home: Path) -> str:
    return " | ".join(r for run in status_of(home)["analysis"] for r in run["reasons"])


# -- the router ------------------------------------------------------------------------------------------


def test_router_splits_by_weight_pins_by_header_and_keeps_sticky_clients(router: Proc, tmp_path: Path) -> None:
    stable, canary = start_fake(tmp_path, "healthy"), start_fake(tmp_path, "healthy")
    try:
        table = {
            "backends": [
                {"name": "stable", "url": stable.url, "version": "m:1", "weight": 70},
                {"name": "canary", "url": canary.url, "version": "m:2", "weight": 30},
            ],
            "sticky_header": "X-User",
        }
        assert put_routes(router, table).status_code == 200
        with httpx.Client(base_url=router.url) as client:
            served = [client.post("/predict", json=["good"]).headers["x-conveyor-backend"] for _ in range(400)]
            share = served.count("canary") / len(served)
            assert 0.22 < share < 0.38, share
            pinned = {
                client.post("/predict", json=["good"], headers={"X-Conveyor-Version": "m:2"}).headers[
                    "x-conveyor-backend"
                ]
                for _ in range(30)
            }
            assert pinned == {"canary"}
            for user in ("alice", "bob", "carol", "dave"):
                seen = {
                    client.post("/predict", json=["good"], headers={"X-User": user}).headers["x-conveyor-backend"]
                    for _ in range(15)
                }
                assert len(seen) == 1, (user, seen)
            metrics = client.get("/metrics").text
            noted = _inputs_seen(client.get("/_conveyor/stats", headers=admin(router.url)).json())
            assert noted["stable"] > 0 and noted["canary"] > 0, noted  # "good": 4 characters, 1 word, each time
            table["backends"] = [{**table["backends"][0], "weight": 100}, {**table["backends"][1], "weight": 0}]
            assert put_routes(router, table).status_code == 200
            client.post("/predict", json=["good"])
            assert (
                _inputs_seen(client.get("/_conveyor/stats", headers=admin(router.url)).json()) == noted
            )  # no canary split: nothing noted
        assert 'conveyor_router_requests_total{backend="canary",code="200",traffic="live",version="m:2"}' in metrics
        assert "conveyor_router_request_duration_seconds_bucket" in metrics
        assert 'conveyor_router_predictions_total{backend="stable",label="positive=true"' in metrics
        assert 'conveyor_router_backend_weight{backend="canary",version="m:2"} 30.0' in metrics
    finally:
        stable.stop()
        canary.stop()


def _inputs_seen(snapshot: dict) -> dict[str, int]:  # type: ignore[type-arg]
    """Input numbers each backend's live traffic noted (router/inputs.py: a text's characters)."""
    return {
        t["backend"]: t.get("inputs_seen", {}).get("text.characters", 0)
        for t in snapshot["traffic"]
        if t["kind"] == "live"
    }


def test_router_rejects_bad_routing_tables_with_a_json_message(router: Proc) -> None:
    bad = put_routes(router, {"backends": [{"name": "a", "url": "http://127.0.0.1:1", "weight": 40}]})
    assert bad.status_code == 422 and "add up to 100" in bad.json()["error"]
    bad = httpx.put(router.url + "/_conveyor/routes", content=b"{nope", headers=admin(router.url), timeout=5)
    assert bad.status_code == 422 and "invalid routing table" in bad.json()["error"]
    empty = httpx.post(router.url + "/predict", json=["good"], timeout=5)
    assert empty.status_code == 503 and "no backend" in empty.json()["error"]
    assert httpx.get(router.url + "/_conveyor/nothing", headers=admin(router.url), timeout=5).status_code == 404


def test_changing_weights_under_load_fails_no_request(router: Proc, tmp_path: Path) -> None:
    a, b = start_fake(tmp_path, "healthy"), start_fake(tmp_path, "healthy")
    assert put_routes(router, {"backends": [{"name": "stable", "url": a.url, "weight": 100}]}).status_code == 200
    try:
        with Load(router.url, clients=4, pause=0.0) as load:
            for i in range(60):
                weight = (i * 17) % 101
                table = {
                    "backends": [
                        {"name": "stable", "url": a.url, "weight": 100 - weight},
                        {"name": "canary", "url": b.url, "weight": weight},
                    ]
                }
                assert put_routes(router, table).status_code == 200
                time.sleep(0.05)
        assert load.errors == 0 and load.wrong == 0, load.seen
        assert load.by_backend["stable"] > 50 and load.by_backend["canary"] > 50
    finally:
        a.stop()
        b.stop()


def test_mirrored_answers_are_compared_and_never_returned(router: Proc, tmp_path: Path) -> None:
    stable, inverted = start_fake(tmp_path, "healthy"), start_fake(tmp_path, "invert")
    try:
        table = {
            "backends": [
                {"name": "stable", "url": stable.url, "version": "m:1", "weight": 100},
                {"name": "canary", "url": inverted.url, "version": "m:2", "weight": 0},
            ],
            "mirror_percent": 100,
            "mirror_to": "canary",
        }
        assert put_routes(router, table).status_code == 200
        with Load(router.url, clients=1, pause=0.005) as load:
            load.answered(40)

            def compared() -> dict | None:
                stats = httpx.get(router.url + "/_conveyor/stats", headers=admin(router.url), timeout=5).json()
                done = stats["comparisons"] and sum(c["disagreed"] + c["agreed"] for c in stats["comparisons"]) > 20
                return stats if done else None

            stats = wait_for(compared, 30, "more than 20 mirrored answers compared")
        assert load.wrong == 0 and set(load.by_backend) == {"stable"}
        [comparison] = stats["comparisons"]
        assert comparison["disagreed"] > 20 and comparison["agreed"] == 0
        mirrored = [t for t in stats["traffic"] if t["kind"] == "mirror"]
        assert mirrored and mirrored[0]["backend"] == "canary"
    finally:
        stable.stop()
        inverted.stop()


def test_failed_connections_are_retried_and_dead_backends_ejected(router: Proc, tmp_path: Path) -> None:
    stable, doomed = start_fake(tmp_path, "healthy"), start_fake(tmp_path, "healthy")
    table = {
        "backends": [
            {"name": "stable", "url": stable.url, "weight": 50},
            {"name": "canary", "url": doomed.url, "weight": 50},
        ]
    }
    assert put_routes(router, table).status_code == 200
    try:
        with Load(router.url, clients=2, pause=0.005) as load:
            load.answered(20)
            assert load.by_backend["canary"] > 0, load.by_backend  # the doomed backend was serving
            doomed.process.kill()
            doomed.process.wait()
            at_kill = load.total

            def ejected() -> dict | None:
                described = httpx.get(router.url + "/_conveyor/routes", headers=admin(router.url), timeout=5).json()
                canary = next(b for b in described["backends"] if b["name"] == "canary")
                return canary if canary["healthy"] is False else None

            canary = wait_for(ejected, 30, "the killed backend to be ejected")
            load.answered(at_kill + 100)  # plenty of requests after the kill, all answered by stable
        assert load.errors <= 2, load.seen  # at most the requests in flight at the kill
        assert canary["last_error"]
    finally:
        stable.stop()


# -- rollouts ---------------------------------------------------------------------------------------------


def _register(home: Path, vote_model: Path, tmp_path: Path) -> None:
    run_cli("models", "register", str(vote_model), "--name", "votes", "--alias", "production", check=True)
    second = tmp_path / "votes-2"
    subprocess.run(["cp", "-r", str(vote_model), str(second)], check=True)
    (second / "model.yaml").write_text((second / "model.yaml").read_text().replace("version: '1'", "version: '2'"))
    run_cli("models", "register", str(second), "--name", "votes", check=True)


def test_healthy_canary_is_promoted_step_by_step_and_production_moves(
    router: Proc, rollout_home: Path, vote_model: Path, tmp_path: Path
) -> None:
    _register(rollout_home, vote_model, tmp_path)
    run_cli("rollout", "start", "votes@production", "--service", "svc", check=True)
    with Load(router.url, clients=2) as load:
        result = rollout("votes:2", "--service", "svc", "--steps", "25,50,100", "--interval", "2s", *FAST)
    assert result.returncode == 0, result.stdout + result.stderr
    status = status_of(rollout_home)
    assert status["phase"] == "succeeded"
    # step by step: each step judged successful before the next, in order; a busy machine may leave a
    # window inconclusive (too few requests yet), which waits and judges again, and never fails it
    windows = [(run["weight"], run["outcome"]) for run in status["analysis"]]
    assert {outcome for _, outcome in windows} <= {"successful", "inconclusive"}, windows
    assert [weight for weight, outcome in windows if outcome == "successful"] == [25, 50], windows
    assert [weight for weight, _ in windows] == sorted(weight for weight, _ in windows), windows
    judged = [run for run in status["analysis"] if run["outcome"] == "successful"]
    assert all(run["measurements"]["contract"]["failed"] == [] for run in judged)
    assert judged[0]["measurements"]["agreement"] == 1.0
    shown = json.loads(run_cli("models", "show", "votes@production", "--json", check=True).stdout)
    assert shown["version"] == 2
    routes = httpx.get(router.url + "/_conveyor/routes", headers=admin(router.url), timeout=5).json()["backends"]
    assert [(b["name"], b["version"], b["weight"]) for b in routes] == [("stable", "votes:2", 100.0)]
    assert load.errors == 0 and load.wrong == 0, load.seen
    assert load.by_backend["canary"] > 0
    # the old stable was started by the first rollout, so it is stopped once nothing routes to it
    first_pid = json.loads(next((rollout_home / "rollouts/svc/history").glob("*.json")).read_text())["canary"]["pid"]
    wait_for(lambda: _gone(first_pid), 15, "the old stable to stop")
    with Load(router.url, clients=2):
        undo = run_cli("rollout", "undo", "svc", "--steps", "50,100")
    assert undo.returncode == 0, undo.stdout + undo.stderr
    assert status_of(rollout_home)["ref"] == "votes:1"
    shown = json.loads(run_cli("models", "show", "votes@production", "--json", check=True).stdout)
    assert shown["version"] == 1


def _gone(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] == "Z"
    except FileNotFoundError:
        return True


def test_canary_failing_a_fifth_of_requests_is_rolled_back_within_two_intervals(
    router: Proc, rollout_home: Path, capsys
) -> None:  # type: ignore[no-untyped-def]
    first_version(router)
    with Load(router.url, clients=2) as load:
        result = rollout(
            "v2", "--service", "svc", "--command", fake_command("fail20"), "--steps", "20,50,100",
            "--interval", "3s", "--no-contract", *FAST,
        )  # fmt: skip
    status = status_of(rollout_home)
    assert result.returncode == 1 and status["phase"] == "aborted", result.stdout
    assert "error rate" in status["abort_reason"]
    # within two intervals: counted in analyses, not in a busy machine's seconds
    assert len(status["analysis"]) <= 2, status["analysis"]
    routes = httpx.get(router.url + "/_conveyor/routes", headers=admin(router.url), timeout=5).json()["backends"]
    assert [(b["name"], b["weight"]) for b in routes] == [("stable", 100.0)]
    total = sum(load.seen.values())
    with capsys.disabled():
        print(f"\n[fail20 canary] client-visible errors: {load.errors} of {total} requests ({load.seen})")
    # every fifth answer of the canary fails (mirrored copies count too, so the share the clients see
    # varies with how the two interleave): the clients saw errors, and only from the canary
    assert load.errors > 0 and set(load.failed_by_backend) == {"canary"}, load.failed_by_backend
    assert httpx.post(router.url + "/predict", json=["good"], timeout=5).json() == {"positive": True}


def test_canary_answering_string_booleans_is_rolled_back_by_the_contract(router: Proc, rollout_home: Path) -> None:
    first_version(router)
    with Load(router.url, clients=2):
        result = rollout(
            "v2", "--service", "svc", "--command", fake_command("string_false"), "--interval", "2s",
            "--mirror-percent", "0", *FAST,
        )  # fmt: skip
    status = status_of(rollout_home)
    assert result.returncode == 1 and status["phase"] == "aborted"
    assert "contract check" in status["abort_reason"] and "boolean" in status["abort_reason"]


def test_controller_killed_at_a_step_resumes_at_that_step(router: Proc, rollout_home: Path) -> None:
    first_version(router)
    with Load(router.url, clients=2) as load:
        args = [sys.executable, "-m", "conveyor", "rollout", "start", "v2", "--service", "svc", "--command",
                fake_command("healthy"), "--steps", "20,60,100", "--interval", "2s", "--no-contract",
                *FAST]  # fmt: skip
        controller = subprocess.Popen(args, env=env(), cwd=REPO, stdout=subprocess.DEVNULL)

        def weights() -> dict[str, float]:
            routes = httpx.get(router.url + "/_conveyor/routes", headers=admin(router.url), timeout=5).json()[
                "backends"
            ]
            return {b["name"]: b["weight"] for b in routes}

        second_step = {"stable": 40.0, "canary": 60.0}
        wait_for(lambda: status_of(rollout_home)["step_index"] == 1 and weights() == second_step, 40, "the second step")
        controller.send_signal(signal.SIGKILL)
        controller.wait()
        killed = status_of(rollout_home)
        assert killed["phase"] == "progressing" and killed["step_index"] == 1
        assert weights() == second_step  # the router keeps serving the split the controller last set
        runs_before = len(killed["analysis"])
        resumed = run_cli("rollout", "controller", "svc")
    status = status_of(rollout_home)
    assert resumed.returncode == 0 and status["phase"] == "succeeded", resumed.stdout + resumed.stderr
    later = status["analysis"][runs_before:]
    assert later and all(run["step"] >= 1 for run in later)  # no step restarted from the beginning
    assert status["canary"]["pid"] == killed["canary"]["pid"]  # the same backend, never restarted
    assert load.errors == 0, load.seen


def test_low_traffic_is_inconclusive_and_pauses_instead_of_failing(router: Proc, rollout_home: Path) -> None:
    first_version(router)
    args = [sys.executable, "-m", "conveyor", "rollout", "start", "v2", "--service", "svc", "--command",
            fake_command("healthy"), "--interval", "1s", "--max-inconclusive", "2", "--no-contract"]  # fmt: skip
    controller = subprocess.Popen(args, env=env(), cwd=REPO, stdout=subprocess.DEVNULL)
    try:
        wait_for(lambda: status_of(rollout_home)["phase"] == "paused", 30, "the pause")
        status = status_of(rollout_home)
        assert [run["outcome"] for run in status["analysis"]] == ["inconclusive", "inconclusive"]
        assert "at least 20" in status["analysis"][0]["reasons"][0]
        again = run_cli("rollout", "start", "v3", "--service", "svc", "--command", fake_command("healthy"))
        assert again.returncode == 5 and "already has a rollout in progress" in again.stderr
        aborted = run_cli("rollout", "abort", "svc", "--reason", "test over")
        assert aborted.returncode == 0 and "aborted" in aborted.stdout
        controller.wait(30)
        assert status_of(rollout_home)["abort_reason"] == "aborted by a user (test over)"
        retried = run_cli("rollout", "retry", "svc", "--detach")
        assert retried.returncode == 0 and status_of(rollout_home)["ref"] == "v2"
        run_cli("rollout", "abort", "svc", check=True)
    finally:
        controller.kill()


def test_a_dead_stable_is_refused_at_once_and_rollout_down_takes_it_off_the_router(
    router: Proc, rollout_home: Path
) -> None:
    """What `make demo` run twice met: the router restored a stable that no longer exists."""
    first_version(router)
    stable_pid = status_of(rollout_home)["canary"]["pid"]
    os.killpg(stable_pid, signal.SIGKILL)

    def ejected() -> bool:
        backends = httpx.get(router.url + "/_conveyor/routes", headers=admin(router.url), timeout=5).json()["backends"]
        return [b["healthy"] for b in backends] == [False]

    wait_for(ejected, 15, "the router to eject the dead stable")
    started = time.monotonic()
    refused = rollout("v2", "--service", "svc", "--command", fake_command("healthy"))
    assert refused.returncode == 5 and time.monotonic() - started < 20, refused.stdout + refused.stderr
    assert "stable backend (v1 at http://127.0.0.1:" in refused.stderr and "is down" in refused.stderr

    down = run_cli("rollout", "down", "svc")
    assert down.returncode == 0 and "removed from the router: stable" in down.stdout, down.stdout + down.stderr
    assert httpx.get(router.url + "/_conveyor/routes", headers=admin(router.url), timeout=5).json()["backends"] == []
    # the service starts again from nothing: the new version takes all traffic at once
    again = rollout("v2", "--service", "svc", "--command", fake_command("healthy"))
    assert again.returncode == 0, again.stdout + again.stderr
    backends = httpx.get(router.url + "/_conveyor/routes", headers=admin(router.url), timeout=5).json()["backends"]
    assert [(b["version"], b["weight"]) for b in backends] == [("v2", 100.0)]
