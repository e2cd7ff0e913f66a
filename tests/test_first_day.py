"""The rough edges of a first day, through the ``conveyor`` command as a new user meets them.

A taken port is one line and exit 6 before any model is fetched or loaded (serve, registry serve,
router, ui); ``conveyor --version`` answers; ``models show`` says who approved a version and why;
``dir(conveyor)`` lists the public API a notebook completes from.
"""

from __future__ import annotations

import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from conveyor import __version__
from conveyor.registry.config import open_local
from conveyor.registry.records import Lineage
from tests.registry_fixtures import run_cli


@pytest.fixture
def taken_port() -> Iterator[int]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


@pytest.mark.parametrize(
    "command",
    [
        ["serve", "votes:1"],
        ["registry", "serve"],
        ["router", "--service", "votes"],
        ["ui"],
    ],
    ids=["serve", "registry-serve", "router", "ui"],
)
def test_a_taken_port_is_one_line_and_exit_6_before_any_model_loads(
    command: list[str], taken_port: int, conveyor_home: Path, vote_model: Path
) -> None:
    open_local().register(vote_model, "votes")
    result = run_cli(*command, "--port", str(taken_port), timeout=60)
    assert result.returncode == 6, result.stdout + result.stderr
    lines = [line for line in (result.stdout + result.stderr).splitlines() if line.strip()]
    assert lines == [
        f"error: port {taken_port} on 127.0.0.1 is already in use (another server is listening there): "
        "stop it, or choose another port with --port"
    ]
    cache = conveyor_home / "cache"
    assert not cache.exists() or not any(cache.rglob("*.onnx")), "the model was fetched before the port was checked"


def test_version_flag_and_command_agree() -> None:
    flag = run_cli("--version", check=True)
    assert flag.stdout.strip() == f"conveyor {__version__}"
    assert run_cli("version", check=True).stdout.strip() == __version__


def test_models_show_says_who_approved_a_version_and_why(conveyor_home: Path, vote_model: Path) -> None:
    approval = {
        "step": "approve",
        "approved": True,
        "by": "carol",
        "reason": "eval looked right",
        "at": "2026-12-04T10:00:00",
    }
    open_local().register(vote_model, "votes", lineage=Lineage(approvals=[approval]))
    shown = run_cli("models", "show", "votes:1", check=True).stdout
    assert 'approved    by carol at step approve (2026-12-04 10:00:00): "eval looked right"' in shown


def test_dir_of_the_package_lists_the_public_api() -> None:
    listed = subprocess.run(
        [sys.executable, "-c", "import conveyor; print(' '.join(dir(conveyor)))"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    for name in (
        "open_registry",
        "start_rollout",
        "attach_rollout",
        "Rollout",
        "ProgressBar",
        "Lineage",
        "__version__",
    ):
        assert name in listed
