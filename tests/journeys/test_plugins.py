"""A plugin package adds a check, a step type and an analysis metric without touching Conveyor.

The example plugin (``examples/plugin``) is installed with the wheel into a fresh venv of its own
(the shared venv stays plugin-free), then used as a team would: ``pipeline validate`` and
``pipeline run`` with its step type, ``verify`` runs its check, and a canary through a real router
is judged (and rolled back) by its metric.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO, free_port
from tests.journeys.conftest import UV, User, copy_model, wait_http
from tests.rollout_fixtures import Load

PLUGIN = REPO / "examples" / "plugin"
FAST = ["--steps", "50,100", "--interval", "2s", "--min-requests", "5", "--p99-floor-ms", "2000"]


@pytest.fixture(scope="module")
def plugin_venv(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("plugin-user")
    plugin = shutil.copytree(PLUGIN, home / "acme-plugin")  # its build leaves files beside its source
    venv = home / "venv"
    subprocess.run([str(UV), "venv", "--quiet", "--python", sys.executable, str(venv)], check=True, timeout=120)
    python, lock = str(venv / "bin" / "python"), str(REPO / "requirements.lock")
    subprocess.run(
        [
            str(UV),
            "pip",
            "install",
            "--quiet",
            "--python",
            python,
            f"{wheel}[router]",
            str(plugin),
            "--constraint",
            lock,
        ],
        check=True,
        timeout=600,
    )
    return venv


@pytest.fixture
def person(plugin_venv: Path, tmp_path: Path) -> User:
    workdir = tmp_path / "team"
    workdir.mkdir()
    user = User(plugin_venv, workdir, env={"CONVEYOR_HOME": str(tmp_path / "home"), "HOME": str(tmp_path)})
    yield user
    user.close()


def test_a_plugin_step_type_is_validated_and_run(person: User) -> None:
    conveyor_yaml = person.workdir / "conveyor.yaml"
    conveyor_yaml.write_text(
        "pipelines:\n  release:\n    steps:\n"
        "      tell: {uses: acme-notify, with: {message: 'votes:2 is out', chanel: ops}}\n"
    )
    refused = person.run("pipeline", "validate")
    assert refused.returncode == 2
    assert "`with:` of `uses: acme-notify`: unknown key chanel (it takes: message, channel)" in refused.stderr

    conveyor_yaml.write_text(conveyor_yaml.read_text().replace("chanel", "channel"))
    result = person.ok("pipeline", "run", "release", "--json")
    step = json.loads(result.stdout)["steps"]["tell"]
    assert step["status"] == "success" and step["outputs"] == {"channel": "ops", "sent": "votes:2 is out"}
    assert (person.workdir / "notifications" / "ops.txt").read_text() == "votes:2 is out\n"


def test_a_plugin_check_runs_in_verify(person: User, vote_folder: Path) -> None:
    copy_model(vote_folder, person.workdir / "votes")
    server = person.serve("votes")
    report = json.loads(person.run("verify", server.url, "--json").stdout)
    (ours,) = [c for c in report["checks"] if c["id"] == "acme.answer-not-empty"]
    assert ours["status"] == "passed" and "positive" in ours["message"]


def test_a_plugin_metric_judges_a_canary_and_rolls_it_back(person: User, vote_folder: Path) -> None:
    copy_model(vote_folder, person.workdir / "votes")
    person.ok("models", "register", "votes", "--name", "votes")
    person.ok("models", "register", "votes", "--name", "votes")
    assert "--acme-max-canary-requests" in person.ok("rollout", "start", "--help").stdout
    port = free_port()
    router = person.spawn("router", "--service", "votes", "--port", str(port), "--health-interval", "0.2")
    router.url = f"http://127.0.0.1:{port}"
    wait_http(router, "/_conveyor/health")
    try:
        person.ok("rollout", "start", "votes:1", "--router", router.url)
        with Load(router.url):
            result = person.run(
                "rollout", "start", "votes:2", "--router", router.url, "--acme-max-canary-requests", "3", *FAST
            )
        assert result.returncode != 0
        status = json.loads((Path(person.env["CONVEYOR_HOME"]) / "rollouts" / "votes" / "status.json").read_text())
        assert status["phase"] == "aborted"
        failed = [run for run in status["analysis"] if "acme_canary_requests" in run["measurements"]]
        assert failed and failed[-1]["measurements"]["acme_canary_requests"] > 3
        assert "over the acme budget of 3" in " ".join(failed[-1]["reasons"])
    finally:
        person.run("rollout", "down", "votes")
