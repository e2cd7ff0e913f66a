"""The Python API a training script or notebook uses: registry and rollouts without the CLI."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx
import pytest

import conveyor
from conveyor import Lineage, ProgressBar, attach_rollout, open_registry, start_rollout
from conveyor.errors import Conflict, InvalidInput, NotFound
from conveyor.registry.protocol import Registry
from tests.rollout_fixtures import Proc, admin, fake_command, wait_for


def test_a_training_script_registers_aliases_and_downloads(
    rollout_home: Path, vote_model: Path, tmp_path: Path
) -> None:
    registry = open_registry()
    assert isinstance(registry, Registry)
    with ProgressBar(enabled=False) as bar:
        version = registry.register(
            vote_model, "votes", aliases=["staging"], lineage=Lineage(metrics={"accuracy": 0.91}), progress=bar
        )
    assert version.ref == "votes:1" and version.lineage.metrics == {"accuracy": 0.91}
    registry.set_alias("votes", "production", version.version)
    assert registry.resolve("votes@production").digest == version.digest
    downloaded = registry.download("votes@staging", tmp_path / "copy")
    assert downloaded.digest == version.digest
    assert sorted(p.name for p in (tmp_path / "copy").iterdir()) == sorted(p.name for p in vote_model.iterdir())
    with pytest.raises(NotFound):
        registry.resolve("votes:7")
    with pytest.raises(NotFound, match="no-such-folder: no such file or directory"):
        registry.register(tmp_path / "no-such-folder", "votes")


def test_a_notebook_drives_a_canary_by_hand(router: Proc, rollout_home: Path) -> None:
    first = start_rollout("v1", service="svc", command=fake_command("healthy"), wait=True)
    assert first.status().phase == "succeeded"
    rollout = start_rollout(
        "v2",
        service="svc",
        command=fake_command("healthy"),
        steps=[10, 50, 100],
        interval="10m",
        analyse_contract=False,
    )
    wait_for(lambda: rollout.status().stage == "canary", 30, "the canary stage")

    def weights() -> dict[str, float]:
        return {
            b["name"]: b["weight"]
            for b in httpx.get(router.url + "/_conveyor/routes", headers=admin(router.url), timeout=5).json()[
                "backends"
            ]
        }

    status = rollout.set_weight(30, reason="a third of the way")
    assert status.phase == "paused" and weights() == {"stable": 70.0, "canary": 30.0}
    with pytest.raises(InvalidInput):
        rollout.set_weight(130)
    status = rollout.promote()
    assert status.phase == "progressing" and weights() == {"stable": 50.0, "canary": 50.0}
    assert attach_rollout("svc").status().id == status.id
    final = rollout.abort("seen enough")
    assert final.phase == "aborted" and final.abort_reason == "aborted by a user (seen enough)"
    assert weights() == {"stable": 100.0}
    with pytest.raises(Conflict):
        rollout.set_weight(20)  # nothing to steer any more


def test_the_api_is_importable_from_the_package_without_the_cli() -> None:
    assert {"open_registry", "start_rollout", "ProgressBar"} <= set(conveyor.__all__)
    probe = (
        "import sys, conveyor\n"
        "conveyor.open_registry, conveyor.start_rollout, conveyor.attach_rollout, conveyor.ProgressBar\n"
        "print(sorted(m for m in sys.modules if m.startswith('conveyor.cli') or m in ('typer', 'click')))\n"
    )
    loaded = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    assert loaded.strip() == "[]", f"the API pulled in the CLI: {loaded}"
    with pytest.raises(AttributeError):
        conveyor.no_such_thing  # noqa: B018


def test_a_command_waits_only_as_long_as_asked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No controller can act here (spawning one is stubbed out), so the command times out after ``wait``."""
    import time

    from conveyor import api
    from conveyor.errors import ConveyorError
    from conveyor.rollout import service
    from conveyor.rollout.status import Backend, RolloutStatus

    monkeypatch.setenv("CONVEYOR_HOME", str(tmp_path))
    monkeypatch.setattr(service, "spawn_controller", lambda name: None)
    rollout = api.Rollout("quiet")
    rollout.store.create(
        RolloutStatus(
            service="quiet",
            strategy="canary",
            ref="m:2",
            router="http://127.0.0.1:9",
            steps=[50, 100],
            interval_s=5,
            stable=Backend(ref="m:1", version="m:1"),
            canary=Backend(ref="m:2", version="m:2"),
        )
    )
    started = time.monotonic()
    with pytest.raises(ConveyorError, match=r"has not acted on it after 0\.5s"):
        rollout.pause(reason="test", wait=0.5)
    assert time.monotonic() - started < 5, "the default 30 s wait was used instead of the one asked for"
