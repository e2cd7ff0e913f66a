"""How each generated job installs Conveyor: pinned, with a pinned uv by default, pip on request."""

from __future__ import annotations

import re

from conveyor.pipeline.github import UV, workflow
from conveyor.pipeline.spec import CISettings, Pipeline
from tests.conftest import REPO

PIPELINE = Pipeline.model_validate({"steps": {"a": {"run": "true"}}})


def _install(ci: CISettings) -> str:
    (step,) = [
        s for s in workflow("p", PIPELINE, ci)["jobs"]["a"]["steps"] if s.get("name") == "Install Conveyor (pinned)"
    ]
    return step["run"]


def test_uv_is_pinned_to_the_version_the_lock_tests() -> None:
    locked = re.search(r"^uv==(\S+)", (REPO / "requirements.lock").read_text(), re.MULTILINE)
    assert locked is not None and f"uv=={locked.group(1)}" == UV


def test_by_default_uv_runs_each_install_into_the_jobs_python() -> None:
    run = _install(CISettings(install=["conveyor-ml==1.2.3", "pytest>=8,<10 --index-url https://x.example/simple"]))
    assert run == (
        f"python -m pip install {UV}"
        ' && python -m uv pip install --python "$(command -v python)" conveyor-ml==1.2.3'
        " && python -m uv pip install --python \"$(command -v python)\" 'pytest>=8,<10' --index-url https://x.example/simple"
    )


def test_pip_on_request_and_no_uv_then() -> None:
    run = _install(CISettings(install=["conveyor-ml==1.2.3"], installer="pip"))
    assert run == "python -m pip install conveyor-ml==1.2.3"


def test_make_install_uses_the_same_uv() -> None:
    pinned = re.search(r"^UV := (\S+)", (REPO / "Makefile").read_text(), re.MULTILINE)
    assert pinned is not None and pinned.group(1) == UV


DELIVER = Pipeline.model_validate(
    {
        "steps": {
            "fetch": {"uses": "fetch-model", "with": {"ref": "m@staging"}},
            "lint": {"uses": "lint", "needs": ["fetch"]},
            "build": {"uses": "build", "needs": ["lint"], "with": {"ref": "m@staging", "tag": "img:1"}},
            "verify": {"uses": "verify", "needs": ["build"], "with": {"target": "${{ steps.build.outputs.image }}"}},
            "signed": {"uses": "verify", "needs": ["fetch"], "with": {"target": "img:1", "supply_chain": True}},
        }
    }
)


def _installs(pipeline: Pipeline, ci: CISettings) -> dict[str, str]:
    jobs = workflow("p", pipeline, ci)["jobs"]
    return {
        name: next(s["run"] for s in job["steps"] if s.get("name") == "Install Conveyor (pinned)")
        for name, job in jobs.items()
    }


def test_each_job_installs_the_extras_its_steps_declare_and_no_more() -> None:
    installs = _installs(DELIVER, CISettings(install=["conveyor-ml==1.2.3", "pytest>=8,<10"]))
    conveyor = {job: run.split(" && ")[1].rsplit(" ", 1)[-1] for job, run in installs.items()}
    assert conveyor == {
        "fetch": "conveyor-ml==1.2.3",  # the core: what `pip install conveyor-ml` brings
        "lint": "'conveyor-ml[lint]==1.2.3'",
        "build": "'conveyor-ml[build]==1.2.3'",  # the image is verified on the builder's runner: core checks
        "signed": "'conveyor-ml[supply-chain]==1.2.3'",
    }
    assert all(run.endswith("'pytest>=8,<10'") for run in installs.values())  # other entries as written


def test_the_extras_join_a_wheel_a_git_url_and_extras_of_the_users_own() -> None:
    entries = [
        "./vendor/conveyor_ml-0.1.0-py3-none-any.whl",
        "conveyor-ml @ git+https://github.com/o/conveyor@v1",
        "conveyor-ml[sklearn]==0.1.0 --index-url https://x.example/simple",
        "./vendor/other-1.0-py3-none-any.whl",
    ]
    run = _installs(DELIVER, CISettings(install=entries, installer="pip"))["build"]
    assert run.split(" && ") == [
        "python -m pip install './vendor/conveyor_ml-0.1.0-py3-none-any.whl[build]'",
        "python -m pip install 'conveyor-ml[build] @ git+https://github.com/o/conveyor@v1'",
        "python -m pip install 'conveyor-ml[build,sklearn]==0.1.0' --index-url https://x.example/simple",
        "python -m pip install ./vendor/other-1.0-py3-none-any.whl",
    ]


def test_the_kfp_tasks_image_installs_the_extras_of_its_pipelines_and_the_compilers_kfp() -> None:
    from conveyor.pipeline.kfp import install_command

    command = install_command(CISettings(install=["conveyor-ml==1.2.3"]), [DELIVER, PIPELINE], "2.16.1")
    assert command == (
        f"python -m pip install --quiet {UV}"
        " && python -m uv pip install --system 'conveyor-ml[build,lint,supply-chain]==1.2.3'"
        " && python -m uv pip install --system kfp==2.16.1"
    )


def test_every_step_type_declares_only_extras_that_exist() -> None:
    import tomllib

    from conveyor.pipeline.step_types import step_types

    declared = set(tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"])
    named = {e for t in step_types().values() if not callable(t.extras) for e in t.extras}
    assert named and named <= declared
