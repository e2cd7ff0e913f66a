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


def test_the_image_source_label_names_the_repository_not_a_local_folder(
    conveyor_home: Path, vote_model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from conveyor.packaging.context import image_labels

    version = open_local().register(vote_model, "votes")
    for name in ("CONVEYOR_SOURCE_URL", "GITHUB_REPOSITORY", "GITHUB_SERVER_URL", "CI_PROJECT_URL"):
        monkeypatch.delenv(name, raising=False)
    checkout = tmp_path / "checkout"
    checkout.mkdir()
    subprocess.run(["git", "init", "-q", str(checkout)], check=True)
    monkeypatch.chdir(checkout)
    assert "org.opencontainers.image.source" not in image_labels(version, None), "a folder is no source"
    remotes = {
        "git@github.com:team/models.git": "https://github.com/team/models",
        "https://ci:s3cret@gitlab.example.com/team/models.git": "https://gitlab.example.com/team/models",
    }
    for remote, expected in remotes.items():
        subprocess.run(["git", "remote", "remove", "origin"], capture_output=True)
        subprocess.run(["git", "remote", "add", "origin", remote], check=True)
        assert image_labels(version, None)["org.opencontainers.image.source"] == expected
    monkeypatch.setenv("GITHUB_REPOSITORY", "team/models")
    assert image_labels(version, None)["org.opencontainers.image.source"] == "https://github.com/team/models"


def _on_a_terminal(args: list[str], cwd: Path, env: dict[str, str]) -> str:
    """Run the command with a pseudo-terminal as stdout (as some CI runners give a step); what it printed."""
    import os
    import pty

    parent, child = pty.openpty()
    process = subprocess.Popen([sys.executable, "-m", "conveyor.cli.main", *args], stdout=child, stderr=child,
                               cwd=cwd, env={**os.environ, **env})  # fmt: skip
    os.close(child)
    chunks = []
    while True:
        try:
            data = os.read(parent, 65536)
        except OSError:  # the terminal closes when the process exits
            break
        if not data:
            break
        chunks.append(data)
    os.close(parent)
    assert process.wait(120) == 0
    return b"".join(chunks).decode(errors="replace")


def test_a_pipeline_in_ci_prints_plain_lines_once_even_on_a_terminal(conveyor_home: Path, tmp_path: Path) -> None:
    (tmp_path / "conveyor.yaml").write_text(
        "pipelines:\n  ci:\n    steps:\n      lint: {run: 'sleep 1'}\n      test: {run: 'true', needs: [lint]}\n"
    )
    logged = _on_a_terminal(["pipeline", "run", "ci"], tmp_path, {"CI": "true", "TERM": "xterm"})
    assert "\x1b[" not in logged, "cursor or colour codes in a CI log"
    lines = [line.strip() for line in logged.splitlines() if line.strip()]
    assert sum(line.startswith("lint") and "success" in line for line in lines) == 1, lines
    assert sum(line.startswith("test") and "success" in line for line in lines) == 1, lines
    assert lines[-1].startswith("run ") and ": success" in lines[-1]
    live = _on_a_terminal(["pipeline", "run", "ci"], tmp_path, {"CI": "", "TERM": "xterm"})
    assert "\x1b[" in live, "a person's terminal gets the live table"
