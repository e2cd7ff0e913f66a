"""Journey: a user's pipeline compiled for Kubeflow Pipelines and run by KFP's own local runner.

From the installed wheel with ``conveyor-ml[kfp]``, in a git repository of the user's:
``conveyor ci kfp`` writes the IR YAML (one task per job, the same needs) and the Containerfile of
the tasks' image, and the user runs that file, as compiled, with ``kfp.local``'s SubprocessRunner:
each task clones the repository and runs ``conveyor pipeline run --step``; a step after another
sees its outcome (the step records travel) and a failed step fails the run and stops what needs it.
A model of 96 MB goes through a pipeline by its registry reference: each task downloads it from a
registry server with its own token, and no task's parameters or logs carry its bytes.

What only a cluster proves (pods from the image, ``ignore_upstream_failure`` running an ``if:``
step after a failure, which the local runner does not do) is said in docs/interop.md.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import onnx
import pytest
import yaml
from onnx import TensorProto, helper, numpy_helper

from tests.conftest import REPO, free_port
from tests.journeys.conftest import UV, User, wait_http

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
  heavy:
    params:
      model: {default: heavy}
    steps:
      fetch: {uses: fetch-model, with: {ref: "${{ params.model }}"}}
      again:
        needs: [fetch]
        uses: fetch-model
        with: {ref: "${{ steps.fetch.outputs.ref }}", dest: again}
"""

RUN = """\
import json
import sys
from kfp import components, local

local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=sys.argv[2], raise_on_error=False)
pipeline = components.load_component_from_file(sys.argv[1])
pipeline(params=json.loads(sys.argv[3]))
"""

HEAVY_FLOATS = 24_000_000  # 96 MB of float32 weights


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


@pytest.fixture(scope="module")
def compiled(kfp_user: User) -> str:
    """``conveyor ci kfp`` run once for both pipelines: what it printed."""
    return kfp_user.ok("ci", "kfp").stdout


def _run(user: User, compiled: Path, root: Path, params: dict[str, str], env: dict[str, str] | None = None) -> str:
    script = user.workdir.parent / "run_kfp.py"
    script.write_text(RUN)
    python = str(user.venv / "bin" / "python")
    result = subprocess.run(
        [python, str(script), str(compiled), str(root), json.dumps(params)],
        capture_output=True,
        text=True,
        env=user.environ(env),
        cwd=user.workdir.parent,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout + result.stderr


def test_the_compiled_pipeline_runs_under_kfps_local_runner(kfp_user: User, compiled: str, tmp_path: Path) -> None:
    for wrote in ("conveyor-deliver.yaml", "conveyor-heavy.yaml", "Containerfile"):
        assert f"wrote {Path('kfp') / wrote}" in compiled
    deliver = kfp_user.workdir / "kfp" / "conveyor-deliver.yaml"
    ir, platform = yaml.safe_load_all(deliver.read_text())
    tasks = ir["root"]["dag"]["tasks"]
    assert len(tasks) == 4  # one task (pod) per job: four failure domains
    key_of = {t["inputs"]["parameters"]["steps"]["runtimeValue"]["constant"][0]: key for key, t in tasks.items()}
    assert set(tasks[key_of["ship"]]["dependentTasks"]) == {key_of["check"], key_of["gate"]}
    assert tasks[key_of["ship"]]["taskInfo"]["name"] == "ship"
    assert ir["root"]["inputDefinitions"]["parameters"]["source"]["defaultValue"] == str(kfp_user.workdir)
    # every task reaches the model registry through the cluster's Secret, and none installs Conveyor
    executors = platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]
    assert len(executors) == 4
    for config in executors.values():
        assert {s["secretName"] for s in config["secretAsEnv"]} == {"conveyor-registry"}
    assert "pip install conveyor" not in deliver.read_text() and "uv pip install" not in deliver.read_text()
    assert "uv pip install --system conveyor-ml==" in (kfp_user.workdir / "kfp" / "Containerfile").read_text()

    trail = tmp_path / "trail.txt"
    log = _run(kfp_user, deliver, tmp_path / "root-no", {"trail": str(trail), "fail": "no"})
    assert "finished with status" in log and "FAILURE" not in log, log
    lines = trail.read_text().splitlines()
    assert lines[0] == "first ran"
    assert sorted(lines[1:3]) == ["check saw first success", "gate passed"]
    assert lines[3] == "ship after success success"

    failed = tmp_path / "failed.txt"
    log = _run(kfp_user, deliver, tmp_path / "root-yes", {"trail": str(failed), "fail": "yes"})
    assert "step gate failed" in log and "FAILURE" in log, log
    assert "ship after" not in failed.read_text()  # what needs the failed step did not run


@pytest.fixture(scope="module")
def heavy_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 96 MB ONNX model that still answers: ``y = x @ W``, W gathered from a large constant."""
    weights = np.random.default_rng(48).standard_normal(HEAVY_FLOATS, dtype=np.float32)
    graph = helper.make_graph(
        [
            helper.make_node("Gather", ["weights", "picked"], ["flat"]),
            helper.make_node("Reshape", ["flat", "shape"], ["w"]),
            helper.make_node("MatMul", ["x", "w"], ["y"]),
        ],
        "heavy",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 2])],
        [
            numpy_helper.from_array(weights, "weights"),
            numpy_helper.from_array(np.arange(8, dtype=np.int64) * 1000, "picked"),
            numpy_helper.from_array(np.array([4, 2], np.int64), "shape"),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path = tmp_path_factory.mktemp("heavy") / "heavy.onnx"
    onnx.save(model, path)
    return path


def test_a_96_mb_model_travels_by_registry_reference_never_in_a_tasks_parameters_or_logs(
    kfp_user: User, compiled: str, heavy_model: Path, tmp_path: Path
) -> None:
    size = heavy_model.stat().st_size
    assert size >= 90_000_000
    port = free_port()
    registry = kfp_user.spawn("registry", "serve", "--port", str(port), name="registry")
    registry.url = f"http://127.0.0.1:{port}"
    try:
        wait_http(registry, "/healthz")
        token = kfp_user.ok("registry", "token", "create", "kfp", "--scope", "write").stdout.strip()
        remote = {"CONVEYOR_REGISTRY": registry.url, "CONVEYOR_TOKEN": token}
        registered = json.loads(
            kfp_user.ok("models", "register", str(heavy_model), "--name", "heavy", "--json", env=remote).stdout
        )
        # each task is a pod of its own: its own, empty Conveyor home, the registry reached by URL and token
        pod = {**remote, "CONVEYOR_HOME": str(tmp_path / "pod-home"), "TMPDIR": str(tmp_path)}
        root = tmp_path / "root"
        log = _run(kfp_user, kfp_user.workdir / "kfp" / "conveyor-heavy.yaml", root, {}, pod)
        assert "finished with status" in log and "FAILURE" not in log, log
        # the second task downloaded the version the first one recorded, by its reference, and checked it
        records = [json.loads(m) for m in re.findall(r"Output: '(\{.*\})'", log)]
        assert len(records) == 2 and records[1]["again"]["status"] == "success"
        assert records[1]["again"]["outputs"]["ref"] == records[0]["fetch"]["outputs"]["ref"] == "heavy:1"
        assert records[1]["again"]["outputs"]["digest"] == registered["digest"]
        assert not list(tmp_path.glob("conveyor-*")), "a task left its clone and the model it fetched"
    finally:
        registry.stop()
    # what the tasks passed each other (their outputs in the pipeline root) and printed: kilobytes
    passed = [p.read_bytes() for p in root.rglob("*") if p.is_file()]
    assert passed and max(len(p) for p in passed) < 20_000
    assert len(log) < 100_000, f"{len(log)} characters of task logs"
    for text in [log, *(p.decode(errors="replace") for p in passed)]:
        assert not re.search(r"[A-Za-z0-9+/=]{120,}", text), "a long base64 run: file bytes"
