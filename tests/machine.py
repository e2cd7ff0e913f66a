"""The programs the suite runs, and where a fresh machine gets each one.

A green CI once hid a missing install step: podman's ``catatonit`` came with the machines the suite
passed on, not with ``.ci/run``, and a fresh machine failed. So every program a test runs is listed
here with the Debian package that ``.ci/run`` (or ``scripts/ci-containers.sh``) installs it from, and
tests ask :func:`tool` for it. On a developer's machine a missing program skips the test with the
install line; under CI (``CI`` set, as CI runs ``.ci/run``) it fails the test, so a missing install
step is red, never a quiet skip. ``tests/test_ci_machine.py`` checks the list against the scripts and
against the programs the tests name.
"""

from __future__ import annotations

import glob
import os
import shutil
from typing import NoReturn

import pytest

# program -> the Debian package .ci/run installs it from
INSTALLED_BY_CI = {
    "initdb": "postgresql",
    "pg_ctl": "postgresql",
    "curl": "curl",
    "chromium": "chromium",
    "node": "nodejs",
    "npm": "npm",
    "podman": "podman",
    "catatonit": "catatonit",  # podman's pause process for `podman kube play` (a Recommends)
    "runc": "runc",
    "buildah": "buildah",
    "skopeo": "skopeo",
    "debootstrap": "debootstrap",
    "docker-registry": "docker-registry",
    "prometheus": "prometheus",  # the exported analysis queries run against it (tests/test_prometheus_analysis.py)
    "nginx": "nginx-light",  # the router's nginx data plane (tests/test_router_nginx.py)
}
# Programs of Debian's essential and base packages: on every Debian machine, CI's included.
ON_EVERY_DEBIAN = {"git", "make", "tar", "mount", "umount", "runuser", "cp", "sleep", "sh", "bash"}
# Programs the project's own install brings into the venv (make install: requirements.lock).
IN_THE_VENV = {"python", "conveyor", "uv", "act", "actionlint", "pytest", "mkdocs", "ruff", "mlflow", "moto_server"}


def where(program: str) -> str | None:
    """Where ``program`` is on this machine, looking where its package puts it (not only PATH)."""
    if program in ("initdb", "pg_ctl"):  # Debian keeps the server binaries off PATH
        found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{program}"))
        if found:
            return found[-1]
    if program == "catatonit":  # podman looks in its helper folder as well as PATH
        helper = "/usr/libexec/podman/catatonit"
        if os.access(helper, os.X_OK):
            return helper
    return shutil.which(program)


def tool(program: str) -> str:
    """The path of ``program``; without it, skip the test here and fail it under CI."""
    path = where(program)
    if path is not None:
        return path
    package = INSTALLED_BY_CI.get(program, program)
    missing(f"{program} is not installed (apt-get install {package}; .ci/run installs it)")


def missing(what: str) -> NoReturn:
    """Something the test needs is not on this machine: skip here, fail under CI."""
    if os.environ.get("CI"):
        pytest.fail(f"{what}: CI must have everything the tests use", pytrace=False)
    pytest.skip(what)
