"""Journey: a user's pipeline compiled for Kubeflow Pipelines and run by KFP's own local runner.

From the installed wheel with ``conveyor-ml[kfp]``, in a git repository of the user's:
``conveyor ci kfp`` writes the IR YAML (one task per job, the same needs), and the user runs that
file, as compiled, with ``kfp.local``'s SubprocessRunner: each task clones the repository and runs
``conveyor pipeline run --step``; a step after another sees its outcome (the state travels) and a
failed step fails the run and stops what needs it.

What only a cluster proves (pods from the image, ``ignore_upstream_failure`` running an ``if:``
step after a failure, which the local runner does not do) is said in docs/interop.md.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.conftest import REPO
from tests.journeys.conftest import UV, User

PROJECT = """\
pipelines:
  deliver:
    params:
      trail: {default: /tmp/trail.txt}
      fail: {default: "no"}
    steps:
      first: {run: "echo first ran >> ${{ params.trail }}"}
      check: {run: "echo check saw first ${{ steps.first.outcome }} >> ${{ params.trail }}", needs: [first]}
      gate: {run: "test ${{ params.fail }} = no && echo gate passed >> ${{ params.trail }}", needs: [first]}
      ship:
        needs: [check, gate]
        run: "echo ship after ${{ steps.check.outcome }} ${{ steps.gate.outcome }} >> ${{ params.trail }}"
"""

RUN = """\
import sys
from kfp import components, local

local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=sys.argv[2], raise_on_error=False)
pipeline = components.load_component_from_file(sys.argv[1])
pipeline(params={"trail": sys.argv[3], "fail": sys.argv[4]}, install="")
"""


@pytest.fixture(scope="module")
def kfp_user(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[User]:
    root = tmp_path_factory.mktemp("kfp-user")
    venv = root / "venv"
    subprocess.run([str(UV), "venv", "--quiet", "--python", sys.executable, str(venv)], check=True, timeout=120)
    install = [str(UV), "pip", "install", "--quiet", "--python", str(venv / "bin" / "python")]
    install += [f"conveyor-ml[kfp] @ {wheel.as_uri()}", "--constraint", str(REPO / "requirements.lock")]
    subprocess.run(install, check=True, timeout=900)
    person = User(venv, root / "repository", env={"CONVEYOR_HOME": str(root / "home"), "HOME": str(root)})
    person.workdir.mkdir()
    (person.workdir / "conveyor.yaml").write_text(PROJECT)
    git = ["git", "-C", str(person.workdir), "-c", "user.email=u@example.com", "-c", "user.name=u"]
    subprocess.run([*git, "init", "--quiet"], check=True)
    subprocess.run([*git, "add", "conveyor.yaml"], check=True)
    subprocess.run([*git, "commit", "--quiet", "-m", "pipeline"], check=True)
    subprocess.run([*git, "remote", "add", "origin", str(person.workdir)], check=True)
    yield person
    person.close()


def _run(user: User, compiled: Path, trail: Path, fail: str) -> str:
    script = user.workdir.parent / "run_kfp.py"
    script.write_text(RUN)
    python = str(user.venv / "bin" / "python")
    root = user.workdir.parent / f"kfp-root-{fail}"
    result = subprocess.run(
        [python, str(script), str(compiled), str(root), str(trail), fail],
        capture_output=True,
        text=True,
        env=user.environ(),
        cwd=user.workdir.parent,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout + result.stderr


def test_the_compiled_pipeline_runs_under_kfps_local_runner(kfp_user: User, tmp_path: Path) -> None:
    wrote = kfp_user.ok("ci", "kfp", "deliver")
    compiled = kfp_user.workdir / "kfp" / "conveyor-deliver.yaml"
    assert f"wrote {Path('kfp') / 'conveyor-deliver.yaml'}" in wrote.stdout
    ir = yaml.safe_load(compiled.read_text())
    tasks = ir["root"]["dag"]["tasks"]
    assert len(tasks) == 4  # one task (pod) per job: four failure domains
    key_of = {t["inputs"]["parameters"]["steps"]["runtimeValue"]["constant"][0]: key for key, t in tasks.items()}
    assert set(tasks[key_of["ship"]]["dependentTasks"]) == {key_of["check"], key_of["gate"]}
    assert tasks[key_of["ship"]]["taskInfo"]["name"] == "ship"
    assert ir["root"]["inputDefinitions"]["parameters"]["source"]["defaultValue"] == str(kfp_user.workdir)

    trail = tmp_path / "trail.txt"
    log = _run(kfp_user, compiled, trail, "no")
    assert "finished with status" in log and "FAILURE" not in log, log
    lines = trail.read_text().splitlines()
    assert lines[0] == "first ran"
    assert sorted(lines[1:3]) == ["check saw first success", "gate passed"]
    assert lines[3] == "ship after success success"

    failed = tmp_path / "failed.txt"
    log = _run(kfp_user, compiled, failed, "yes")
    assert "step gate failed" in log and "FAILURE" in log, log
    assert "ship after" not in failed.read_text()  # what needs the failed step did not run
