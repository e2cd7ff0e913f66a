"""A fresh CI machine gets every program the tests run: .ci/run installs each one, none is assumed.

The list lives in tests/machine.py. These tests keep it honest from both sides: every package it
names is installed by .ci/run (or scripts/ci-containers.sh), every program the tests and Conveyor run
is on the list, and under CI each one is really there.
"""

from __future__ import annotations

import os
import re

import pytest

from tests.conftest import REPO
from tests.machine import IN_THE_VENV, INSTALLED_BY_CI, ON_EVERY_DEBIAN, where

SCRIPTS = (REPO / ".ci" / "run").read_text() + (REPO / "scripts" / "ci-containers.sh").read_text()
# Engines a user may have instead of podman: Conveyor looks for them, the tests never need them.
USERS_ALTERNATIVES = {"docker"}
# How Python code names a program it runs: shutil.which, tests.machine.tool, or a literal argv list.
NAMED = re.compile(r'(?:which|tool)\(\s*"([\w.-]+)"\s*\)|(?:run|Popen|check_output|check_call)\(\s*\[\s*"([\w.-]+)"')
ARGV_HEAD = re.compile(r'\[\s*"(podman|buildah|docker|skopeo|git|tar|curl|node|npm|mount|umount|runuser|make)",')


def _programs_named_in_code() -> dict[str, str]:
    found: dict[str, str] = {}
    for root in ("tests", "src", "scripts"):
        for path in (REPO / root).rglob("*.py"):
            if "node_modules" in path.parts:
                continue
            text = path.read_text()
            for match in NAMED.finditer(text):
                found.setdefault(match.group(1) or match.group(2), str(path.relative_to(REPO)))
            for match in ARGV_HEAD.finditer(text):
                found.setdefault(match.group(1), str(path.relative_to(REPO)))
    return found


def test_ci_installs_the_package_of_every_program_on_the_list() -> None:
    packages = set(INSTALLED_BY_CI.values())
    missing = sorted(p for p in packages if not re.search(rf"(?<![\w-]){re.escape(p)}(?![\w-])", SCRIPTS))
    assert missing == [], f".ci/run and scripts/ci-containers.sh never install {missing}"


def test_every_program_the_code_runs_is_on_the_list() -> None:
    known = set(INSTALLED_BY_CI) | ON_EVERY_DEBIAN | IN_THE_VENV | USERS_ALTERNATIVES
    unlisted = {program: path for program, path in _programs_named_in_code().items() if program not in known}
    assert unlisted == {}, "add these to tests/machine.py with the package .ci/run installs them from"


def test_the_scan_sees_the_programs_it_must() -> None:
    """The scan itself works: it finds podman and catatonit, which the suite is known to run."""
    named = _programs_named_in_code()
    assert {"podman", "catatonit", "git", "docker-registry", "initdb"} <= set(named)


@pytest.mark.skipif(not os.environ.get("CI"), reason="a developer's machine may lack what CI installs")
def test_under_ci_every_program_is_installed() -> None:
    absent = sorted(p for p in {*INSTALLED_BY_CI, *ON_EVERY_DEBIAN} if where(p) is None)
    assert absent == [], f"CI's machine lacks {absent}: .ci/run must install them"
