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
