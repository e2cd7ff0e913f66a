"""The local pipeline runner: DAG order, parallelism, failure isolation, retries, timeouts,
caching, resume, outputs and conditions, validation errors with line numbers."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import pytest
import yaml

from tests.registry_fixtures import run_cli
from tests.waiting import wait_for


@pytest.fixture
def project(tmp_path: Path, conveyor_home: Path) -> Path:
    root = tmp_path / "project"
    root.mkdir()
    return root


def write(project: Path, pipelines: dict) -> Path:
    path = project / "conveyor.yaml"
    path.write_text(yaml.safe_dump({"pipelines": pipelines}, sort_keys=False))
    return path


def run(project: Path, name: str, *args: str) -> tuple[int, dict]:
    result = run_cli("pipeline", "run", name, "--file", str(project / "conveyor.yaml"), "--json", *args)
    try:
        return result.returncode, json.loads(result.stdout)
    except json.JSONDecodeError:
        raise AssertionError(f"exit {result.returncode}: {result.stdout}\n{result.stderr}") from None


def stamp(name: str, seconds: float = 0) -> str:
    """A shell step that records when it started and ended."""
    return f"echo start $(date +%s.%N) >> {name}.times; sleep {seconds}; echo end $(date +%s.%N) >> {name}.times"


def times(project: Path, name: str) -> tuple[float, float]:
    lines = dict(line.split() for line in (project / f"{name}.times").read_text().splitlines())
    return float(lines["start"]), float(lines["end"])


def test_steps_run_in_dag_order_and_independent_steps_in_parallel(project: Path) -> None:
    write(
        project,
        {
            "dag": {
                "steps": {
                    "prepare": {"run": stamp("prepare")},
                    "left": {"run": stamp("left", 1.5), "needs": ["prepare"]},
                    "right": {"run": stamp("right", 1.5), "needs": ["prepare"]},
                    "join": {"run": stamp("join"), "needs": ["left", "right"]},
                }
            }
        },
    )
    code, record = run(project, "dag")
    assert code == 0 and record["status"] == "success"
    prepare, left, right, join = (times(project, n) for n in ("prepare", "left", "right", "join"))
    assert prepare[1] <= left[0] and prepare[1] <= right[0]
    assert left[1] <= join[0] and right[1] <= join[0]
    assert left[0] < right[1] and right[0] < left[1], "left and right did not overlap"


def test_a_failure_stops_only_its_dependants(project: Path) -> None:
    write(
        project,
        {
            "iso": {
                "steps": {
                    "a": {"run": "echo a"},
                    "broken": {"run": "echo about to fail; exit 3", "needs": ["a"]},
                    "after_broken": {"run": "touch should-not-exist", "needs": ["broken"]},
                    "independent": {"run": "sleep 0.5; touch independent-ran", "needs": ["a"]},
                }
            }
        },
    )
    code, record = run(project, "iso")
    steps = record["steps"]
    assert code == 1 and record["status"] == "failure"
    assert steps["broken"]["status"] == "failure" and steps["broken"]["exit_code"] == 3
    assert "about to fail" in steps["broken"]["message"]
    assert steps["after_broken"]["status"] == "skipped"
    assert "broken failure" in steps["after_broken"]["message"]
    assert steps["independent"]["status"] == "success"
    assert (project / "independent-ran").exists() and not (project / "should-not-exist").exists()
    logs = run_cli("pipeline", "logs", record["id"], "broken")
    assert "about to fail" in logs.stdout


def test_retries_with_backoff(project: Path) -> None:
    flaky = "n=$(cat count 2>/dev/null || echo 0); echo $((n+1)) > count; [ $n -ge 2 ]"
    write(project, {"retry": {"steps": {"flaky": {"run": flaky, "retries": 2, "retry_backoff": 0.2}}}})
    started = time.monotonic()
    code, record = run(project, "retry")
    assert code == 0
    assert record["steps"]["flaky"]["attempts"] == 3
    assert time.monotonic() - started >= 0.6  # 0.2 s then 0.4 s of backoff
    write(project, {"retry": {"steps": {"never": {"run": "exit 1", "retries": 1, "retry_backoff": 0}}}})
    code, record = run(project, "retry")
    assert code == 1 and record["steps"]["never"]["attempts"] == 2


def test_a_step_over_its_timeout_is_killed_with_its_children(project: Path) -> None:
    step = "sleep 60 & echo $! > child.pid; wait; touch finished"
    write(project, {"slow": {"steps": {"sleepy": {"run": step, "timeout": 1}}}})
    started = time.monotonic()
    code, record = run(project, "slow")
    assert code == 1 and time.monotonic() - started < 20
    assert record["steps"]["sleepy"]["message"] == "timed out after 1s"
    child = int((project / "child.pid").read_text())  # the step's own child, which would sleep 60 s

    def gone() -> bool:
        try:
            state = Path(f"/proc/{child}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except FileNotFoundError:
            return True
        return state in ("Z", "X")

    wait_for(gone, timeout=10, what=f"the step's child {child} to be killed")
    assert not (project / "finished").exists()


def test_outputs_flow_to_later_steps_and_conditions_choose_steps(project: Path) -> None:
    write(
        project,
        {
            "flow": {
                "params": {"threshold": 0.5},
                "steps": {
                    "measure": {
                        "run": 'echo "score=0.8" >> "$CONVEYOR_OUTPUT"; echo "label=good" >> "$CONVEYOR_OUTPUT"'
                    },
                    "use": {
                        "run": "echo ${{ steps.measure.outputs.label }}-${{ params.threshold }} > used",
                        "needs": ["measure"],
                    },
                    "passed": {
                        "run": "touch passed",
                        "needs": ["measure"],
                        "if": "steps.measure.outputs.score >= params.threshold",
                    },
                    "refused": {
                        "run": "touch refused",
                        "needs": ["measure"],
                        "if": "steps.measure.outputs.score < params.threshold",
                    },
                    "on_failure": {"run": "touch cleanup", "needs": ["use"], "if": "failure()"},
                },
            }
        },
    )
    code, record = run(project, "flow")
    assert code == 0
    assert (project / "used").read_text().strip() == "good-0.5"
    assert record["steps"]["measure"]["outputs"] == {"score": 0.8, "label": "good"}
    assert (project / "passed").exists() and not (project / "refused").exists()
    assert record["steps"]["refused"]["status"] == "skipped"
    assert record["steps"]["on_failure"]["status"] == "skipped"
    code, record = run(project, "flow", "--param", "threshold=0.9")
    assert record["steps"]["refused"]["status"] == "success"


def test_cached_steps_are_skipped_until_their_inputs_change(project: Path) -> None:
    (project / "data.txt").write_text("v1")
    write(
        project,
        {
            "cache": {
                "steps": {
                    "expensive": {
                        "run": 'echo ran >> runs.log; echo "rows=$(wc -c < data.txt)" >> "$CONVEYOR_OUTPUT"',
                        "cache": {"paths": ["data.txt"]},
                    },
                    "after": {"run": "echo ${{ steps.expensive.outputs.rows }} > rows", "needs": ["expensive"]},
                }
            }
        },
    )
    run(project, "cache")
    code, record = run(project, "cache")
    assert code == 0
    assert record["steps"]["expensive"]["status"] == "cached"
    assert (project / "runs.log").read_text().count("ran") == 1
    assert (project / "rows").read_text().strip() == "2"
    (project / "data.txt").write_text("v2 changed")
    code, record = run(project, "cache")
    assert record["steps"]["expensive"]["status"] == "success"
    assert (project / "runs.log").read_text().count("ran") == 2


def test_bytecode_a_step_writes_into_its_cached_folder_is_not_an_input(project: Path) -> None:
    """Importing the cached code writes __pycache__ there; the next run must still find the step cached."""
    package = project / "mycode"
    package.mkdir()
    (package / "__init__.py").write_text("VALUE = 1\n")
    step = {
        "run": "python -c 'import mycode' && echo ran >> runs.log",
        "cache": {"paths": ["mycode"]},
        "env": {"PYTHONDONTWRITEBYTECODE": ""},
    }
    write(project, {"bytecode": {"steps": {"importer": step}}})
    run(project, "bytecode")
    assert any((package / "__pycache__").glob("*.pyc")), "the step wrote bytecode"
    code, record = run(project, "bytecode")
    assert code == 0 and record["steps"]["importer"]["status"] == "cached"
    (package / "__init__.py").write_text("VALUE = 2\n")
    code, record = run(project, "bytecode")
    assert record["steps"]["importer"]["status"] == "success"
    assert (project / "runs.log").read_text().count("ran") == 2


def test_a_failed_run_resumes_from_its_failed_step(project: Path) -> None:
    write(
        project,
        {
            "resume": {
                "steps": {
                    "first": {"run": "echo first >> calls"},
                    "second": {"run": "echo second >> calls; test -f fixed", "needs": ["first"]},
                    "third": {"run": "echo third >> calls", "needs": ["second"]},
                }
            }
        },
    )
    code, failed = run(project, "resume")
    assert code == 1 and failed["steps"]["third"]["status"] == "skipped"
    (project / "fixed").touch()
    code, resumed = run(project, "resume", "--resume", failed["id"])
    assert code == 0 and resumed["resumed_from"] == failed["id"]
    assert resumed["steps"]["first"]["status"] == "cached"
    assert resumed["artifacts"] == failed["artifacts"]
    assert (project / "calls").read_text().split() == ["first", "second", "second", "third"]
    history = json.loads(run_cli("pipeline", "runs", "resume", "--json").stdout)
    assert [r["id"] for r in history] == [resumed["id"], failed["id"]]


def test_python_function_steps_get_params_and_return_outputs(project: Path) -> None:
    (project / "steps.py").write_text(
        "from conveyor.pipeline.execute import StepFailed\n\n\n"
        "def produce(ctx):\n"
        "    (ctx.artifacts / 'data.txt').write_text('hello ' + ctx.params['who'])\n"
        "    return {'path': str(ctx.artifacts / 'data.txt'), 'count': 2}\n\n\n"
        "def consume(ctx):\n"
        "    text = open(ctx.arg('path', required=True)).read()\n"
        "    if ctx.arg('count') != 2:\n"
        "        raise StepFailed('expected count 2')\n"
        "    return {'text': text}\n"
    )
    write(
        project,
        {
            "py": {
                "params": {"who": "world"},
                "steps": {
                    "produce": {"python": "steps:produce"},
                    "consume": {
                        "python": "steps:consume",
                        "needs": ["produce"],
                        "with": {
                            "path": "${{ steps.produce.outputs.path }}",
                            "count": "${{ steps.produce.outputs.count }}",
                        },
                    },
                },
            }
        },
    )
    code, record = run(project, "py")
    assert code == 0, record
    assert record["steps"]["consume"]["outputs"] == {"text": "hello world"}


@pytest.mark.parametrize(
    ("pipelines", "message"),
    [
        ({"p": {"steps": {"a": {"run": "x", "needs": ["nope"]}}}}, "needs 'nope', which is not a step"),
        ({"p": {"steps": {"a": {"run": "x", "needs": ["b"]}, "b": {"run": "y", "needs": ["a"]}}}}, "cycle"),
        ({"p": {"steps": {"a": {"uses": "teleport"}}}}, "unknown step type 'teleport'"),
        ({"p": {"steps": {"a": {"run": "x", "python": "m:f"}}}}, "exactly one of uses, run, python"),
        ({"p": {"steps": {"a": {"run": "x", "timeout": -1}}}}, "timeout"),
        (
            {"p": {"steps": {"a": {"uses": "optimize", "with": {"ref": "m:1", "min_agrement": 0.9}}}}},
            "`with:` of `uses: optimize`: unknown key min_agrement (it takes: ref, eval,",
        ),
        (
            {"p": {"steps": {"a": {"uses": "optimize", "with": {"ref": "m:1", "min_agreement": "high"}}}}},
            "min_agreement: Input should be a valid number",
        ),
        ({"p": {"steps": {"a": {"uses": "optimize", "with": {"methods": ["fp16"]}}}}}, "missing ref"),
        ({"p": {"steps": {"a": {"uses": "push", "with": {"tls_verify": "maybe"}}}}}, "tls_verify"),
    ],
)
def test_invalid_files_are_refused_with_the_line(project: Path, pipelines: dict, message: str) -> None:
    path = write(project, pipelines)
    result = run_cli("pipeline", "validate", "--file", str(path))
    assert result.returncode == 2
    assert message in result.stderr
    assert f"{path}:" in result.stderr and ":" in result.stderr.split(str(path))[1]


@pytest.mark.parametrize("sign", [True, False, "keys/team.key", "${{ params.sign }}"])
def test_sign_takes_true_false_a_key_file_or_an_expression(project: Path, sign: object) -> None:
    steps = {
        kind: {"uses": kind, "with": {"sign": sign, **extra}}
        for kind, extra in [
            ("register", {"path": "m", "name": "m"}),
            ("build", {"ref": "m:1", "tag": "m:1"}),
            ("push", {"image": "m:1"}),
        ]
    }
    path = write(project, {"p": {"params": {"sign": "true"}, "steps": steps}})
    result = run_cli("pipeline", "validate", "--file", str(path))
    assert result.returncode == 0, result.stderr


def test_validation_error_points_at_the_right_line(project: Path) -> None:
    path = project / "conveyor.yaml"
    path.write_text(
        "pipelines:\n  p:\n    steps:\n      ok:\n        run: echo\n      bad:\n        run: x\n        retries: 99\n"
    )
    result = run_cli("pipeline", "validate", "--file", str(path))
    assert result.returncode == 2
    assert f"{path}:8: pipelines.p.steps.bad.retries" in result.stderr


def test_unknown_parameter_is_refused(project: Path) -> None:
    write(project, {"p": {"params": {"a": 1}, "steps": {"s": {"run": "true"}}}})
    result = run_cli("pipeline", "run", "p", "--file", str(project / "conveyor.yaml"), "--param", "b=2")
    assert result.returncode == 2 and "unknown parameter(s) ['b']" in result.stderr


def test_single_steps_carry_results_through_a_state_folder_like_ci_jobs(project: Path) -> None:
    write(
        project,
        {
            "ci": {
                "steps": {
                    "make": {"run": 'echo "n=41" >> "$CONVEYOR_OUTPUT"; echo data > "$CONVEYOR_ARTIFACTS/file"'},
                    "use": {
                        "run": 'test "$(cat $CONVEYOR_ARTIFACTS/file)" = data; '
                        "echo $((${{ steps.make.outputs.n }} + 1)) > n",
                        "needs": ["make"],
                    },
                }
            }
        },
    )
    state = project / ".state"
    missing = run_cli(
        "pipeline",
        "run",
        "ci",
        "--file",
        str(project / "conveyor.yaml"),
        "--step",
        "use",
        "--state",
        str(project / ".empty-state"),
    )
    assert missing.returncode == 1 and "no result for needed step(s) ['make']" in missing.stdout
    code, first = run(project, "ci", "--step", "make", "--state", str(state))
    assert code == 0 and first["steps"]["use"]["status"] == "pending"
    code, second = run(project, "ci", "--step", "use", "--state", str(state))
    assert code == 0, second["steps"]["use"]
    assert (project / "n").read_text().strip() == "42"
    assert {p.name for p in (state / "steps").iterdir()} == {"make.json", "use.json"}


def test_generated_github_workflows_pass_actionlint(project: Path) -> None:
    import shutil
    import subprocess

    repo = Path(__file__).resolve().parent.parent
    out = project / ".github" / "workflows"
    result = run_cli("ci", "github", "--file", str(repo / "conveyor.yaml"), "--out", str(out))
    assert result.returncode == 0, result.stderr
    files = sorted(out.glob("*.yml"))
    assert [f.name for f in files] == ["conveyor-deliver.yml", "conveyor-train.yml"]
    actionlint = shutil.which("actionlint") or str(Path(sys.executable).parent / "actionlint")
    lint = subprocess.run([actionlint, *map(str, files)], capture_output=True, text=True)
    assert lint.returncode == 0, lint.stdout + lint.stderr
    deliver = yaml.safe_load((out / "conveyor-deliver.yml").read_text())
    on = deliver[True] if True in deliver else deliver["on"]  # YAML 1.1 reads the key `on` as a boolean
    assert set(on) == {"workflow_dispatch", "repository_dispatch"}
    # every job is a fresh runner: the image is verified and pushed where it was built
    assert set(deliver["jobs"]) == {"fetch", "lint", "unit-tests", "contract", "build", "deploy"}
    assert deliver["jobs"]["build"]["needs"] == ["contract", "lint", "unit-tests"]
    assert deliver["jobs"]["deploy"]["needs"] == ["build"]
    text = (out / "conveyor-deliver.yml").read_text()
    assert "${{ secrets.CONVEYOR_TOKEN }}" in text and "cvt_" not in text
    runs = [s["run"] for s in deliver["jobs"]["build"]["steps"] if s.get("run", "").startswith("conveyor ")]
    assert [r.split("--step ")[1].split()[0] for r in runs] == ["build", "verify-image", "push"]
    assert runs[0].startswith("conveyor pipeline run deliver --step build --state .conveyor-ci")
    # an empty input (a push, a webhook) falls back to the parameter's default, never to ""
    assert "inputs.model || github.event.client_payload.model || 'sentiment@production'" in runs[0]
    # Conveyor's own repository installs itself from its lock (conveyor.yaml's ci.install)
    assert 'python -m uv pip install --python "$(command -v python)" -r requirements.lock' in text
    setup = deliver["jobs"]["fetch"]["steps"][1]
    # no cache: pip, which fails a repository with no requirements.txt or pyproject.toml
    assert setup["uses"] == "actions/setup-python@v6" and "cache" not in setup["with"]
    train = yaml.safe_load((out / "conveyor-train.yml").read_text())
    train_on = train[True] if True in train else train["on"]
    assert train_on["push"] == {"branches": ["main"]}


def test_watch_runs_the_pipeline_when_a_new_version_is_registered(project: Path, vote_model: Path) -> None:
    import os
    import subprocess

    from conveyor.registry.config import open_local

    write(
        project,
        {
            "on-new-model": {
                "params": {"model": "none"},
                "triggers": [{"model_version": {"model": "votes"}}],
                "steps": {"record": {"run": "echo ${{ params.model }} > triggered-by"}},
            }
        },
    )
    watcher = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "conveyor.cli.main",
            "pipeline",
            "watch",
            "--file",
            str(project / "conveyor.yaml"),
            "--once",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ},
        cwd=project,
    )
    try:
        registry = open_local()
        wait_for(registry.webhooks.all, timeout=30, what="the watcher to register its webhook")
        registry.register(vote_model, "other")  # not a trigger of this pipeline
        registry.register(vote_model, "votes")
        out, _ = watcher.communicate(timeout=60)
    finally:
        watcher.kill()
    assert watcher.returncode == 0, out
    assert (project / "triggered-by").read_text().strip() == "votes:1"
    assert "pipeline on-new-model run" in out and "success" in out
    assert open_local().webhooks.all() == [], "the webhook is removed when the watcher stops"


def test_a_broken_expression_fails_its_step_with_a_message(project: Path) -> None:
    write(
        project,
        {
            "p": {
                "steps": {
                    "a": {"run": "true"},
                    "b": {"run": "echo ${{ steps.a.outputs.x + }}", "needs": ["a"]},
                    "c": {"run": "touch c-ran", "needs": ["b"]},
                }
            }
        },
    )
    code, record = run(project, "p")
    assert code == 1
    assert record["steps"]["b"]["status"] == "failure" and "expression" in record["steps"]["b"]["message"]
    assert record["steps"]["c"]["status"] == "skipped"
    assert record["status"] == "failure"


def test_step_arguments_from_expressions_are_typed_when_the_step_runs(project: Path) -> None:
    write(
        project,
        {
            "p": {
                "params": {"agreement": "0.9"},
                "steps": {
                    "gate": {
                        "uses": "optimize",
                        "with": {"ref": "m:1", "min_agreement": "${{ params.agreement }}"},
                    },
                    "after": {"run": "touch after-ran", "needs": ["gate"]},
                },
            }
        },
    )
    result = run_cli("pipeline", "validate", "--file", str(project / "conveyor.yaml"))
    assert result.returncode == 0, result.stderr  # an expression's type is only known at run time
    code, record = run(project, "p", "--param", "agreement=high")
    assert code == 1
    step = record["steps"]["gate"]
    assert step["status"] == "failure"
    assert "`with:` of `uses: optimize`: min_agreement: Input should be a valid number" in step["message"]
    assert not (project / "after-ran").exists()
