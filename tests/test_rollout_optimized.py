"""An optimized variant delivered by canary: promoted when its answers agree, rolled back when not.

Real router, real ``conveyor serve`` backends from the registry, real mirrored-traffic agreement.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from conveyor.optimize.run import optimize
from conveyor.registry.config import open_local
from tests.registry_fixtures import run_cli
from tests.rollout_fixtures import Load, Proc, status_of
from tests.test_optimize import inverted, sentences

FAST = ["--min-requests", "10", "--min-compared", "5", "--p99-floor-ms", "2000", "--mirror-percent", "50"]


def test_an_agreeing_variant_is_promoted_and_a_disagreeing_one_rolled_back(
    router: Proc, rollout_home: Path, vote_model: Path, tmp_path: Path
) -> None:
    registry = open_local()
    registry.register(vote_model, "votes", aliases=["production"])
    fast = optimize(registry, "votes:1", sentences(60), methods=["int8"], measure=False)
    assert fast.registered is not None and fast.registered.ref == "votes:2"
    run_cli("rollout", "start", "votes@production", "--service", "svc", check=True)

    with Load(router.url, clients=2) as load:
        promoted = run_cli("rollout", "start", "votes:2", "--service", "svc", "--steps", "50,100",
                           "--interval", "2s", "--no-contract", *FAST)  # fmt: skip
    status = status_of(rollout_home)
    assert promoted.returncode == 0 and status["phase"] == "succeeded", promoted.stdout + promoted.stderr
    judged = [run for run in status["analysis"] if run["outcome"] == "successful"]  # not a busy first window
    assert judged and judged[0]["measurements"]["agreement"] == 1.0
    assert load.errors == 0 and load.wrong == 0, load.seen
    shown = json.loads(run_cli("models", "show", "votes@production", "--json", check=True).stdout)
    assert shown["version"] == 2 and shown["lineage"]["optimized_from"] == "votes:1"

    broken = tmp_path / "broken"
    shutil.copytree(vote_model, broken)
    inverted(vote_model / "model.onnx", broken / "model.onnx")
    registry.register(broken, "votes")  # registered around the gate, as a careless upload would be
    with Load(router.url, clients=2):
        refused = run_cli("rollout", "start", "votes:3", "--service", "svc", "--steps", "50,100",
                          "--interval", "2s", "--no-contract", *FAST)  # fmt: skip
    status = status_of(rollout_home)
    assert refused.returncode == 1 and status["phase"] == "aborted", refused.stdout
    assert "agree with stable" in status["abort_reason"]
    assert json.loads(run_cli("models", "show", "votes@production", "--json", check=True).stdout)["version"] == 2
