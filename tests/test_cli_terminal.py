"""One error path: every CLI error reads the same, with the same exit code, on a terminal and off it.

A terminal changes what the CLI draws (pipeline run's live table, progress bars, rollout views),
never how it fails.  Each case runs the real ``conveyor`` command twice: under a pseudo-terminal
(stdin, stdout and stderr all on it, as a person's shell has them) and with plain pipes (a CI log),
and compares the error lines (colour codes removed) and the exit codes.
"""

from __future__ import annotations

import fcntl
import os
import re
import socket
import struct
import subprocess
import sys
import termios
from collections.abc import Iterator
from pathlib import Path

import pytest

from conveyor.cli.output import EXIT_FAILURE, EXIT_NOT_FOUND, EXIT_PORT, EXIT_USAGE

ESCAPES = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\x1b\][^\x07]*\x07|\x1b[()][A-Z0-9]")
MISSING = "acme_missing_module_for_the_test"
PROJECT = """\
pipelines:
  ship:
    steps:
      build: {run: "echo built"}
      test: {run: "exit 3", needs: [build]}
"""


def on_terminal(args: list[str], env: dict[str, str], cwd: Path) -> tuple[int, str]:
    """Run ARGS with a pseudo-terminal as stdin, stdout and stderr: (exit code, what it showed)."""
    main, side = os.openpty()
    fcntl.ioctl(side, termios.TIOCSWINSZ, struct.pack("HHHH", 50, 200, 0, 0))
    process = subprocess.Popen(args, stdin=side, stdout=side, stderr=side, env=env, cwd=cwd)
    os.close(side)
    shown = b""
    while True:
        try:
            chunk = os.read(main, 65536)
        except OSError:  # EIO: the command exited and closed the terminal
            break
        if not chunk:
            break
        shown += chunk
    os.close(main)
    code = process.wait(timeout=120)
    return code, ESCAPES.sub("", shown.decode(errors="replace")).replace("\r\n", "\n")


def off_terminal(args: list[str], env: dict[str, str], cwd: Path) -> tuple[int, str]:
    result = subprocess.run(
        args, capture_output=True, text=True, env=env, cwd=cwd, timeout=120, stdin=subprocess.DEVNULL
    )
    return result.returncode, result.stdout + result.stderr


def errors(shown: str) -> list[str]:
    """The error lines (``error: ...`` from Conveyor, ``Error: ...`` from a usage mistake)."""
    return [line.strip() for line in shown.splitlines() if line.strip().lower().startswith("error:")]


@pytest.fixture(scope="module")
def taken_port() -> Iterator[int]:
    with socket.socket() as listening:
        listening.bind(("127.0.0.1", 0))
        listening.listen()
        yield listening.getsockname()[1]


@pytest.fixture(scope="module")
def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def place(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """A project folder, a fresh CONVEYOR_HOME, and a plugin package whose step types fail to import."""
    (tmp_path / "conveyor.yaml").write_text(PROJECT)
    (tmp_path / "notify.yaml").write_text("pipelines:\n  notify:\n    steps:\n      tell: {uses: acme-notify}\n")
    (tmp_path / "bad.yaml").write_text("pipelines:\n  ship:\n    steps:\n      a: {run: echo, retries: 99}\n")
    info = tmp_path / "site" / "acme_broken-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: acme-broken\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(f"[conveyor.step_types]\nacme = {MISSING}\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONVEYOR_") and k not in ("CI", "GITHUB_ACTIONS")}
    env.update(CONVEYOR_HOME=str(tmp_path / "home"), TERM="xterm-256color", COLUMNS="200")
    env["PYTHONPATH"] = str(tmp_path / "site")
    return tmp_path, env


CASES = {
    "unknown command": (["nosuch"], EXIT_USAGE),
    "missing argument": (["models", "show"], EXIT_USAGE),
    "bad option value": (["pipeline", "run", "ship", "--param", "no-equals-sign"], EXIT_USAGE),
    "not found": (["models", "show", "nosuch"], EXIT_NOT_FOUND),
    "no such pipeline": (["pipeline", "run", "nosuch"], EXIT_NOT_FOUND),
    "bad pipeline step": (["pipeline", "run", "ship", "--step", "nosuch"], EXIT_USAGE),
    "invalid conveyor.yaml": (["pipeline", "validate", "--file", "bad.yaml"], EXIT_USAGE),
    "registry unreachable": (["models", "list"], EXIT_FAILURE),
    "port in use": (["serve", "nosuch:1", "--port", "{taken_port}"], EXIT_PORT),
    "no rollout": (["rollout", "status", "nosuch", "--watch"], EXIT_NOT_FOUND),
    "rollout of a missing model": (["rollout", "start", "nosuch:1"], EXIT_NOT_FOUND),  # its live view
    "download of a missing model": (["models", "download", "nosuch:1", "--output", "out"], EXIT_NOT_FOUND),  # a bar
    "monitor of a missing model": (["monitor", "nosuch:1", "--logs", "logs"], EXIT_NOT_FOUND),  # a bar on a terminal
    "broken plugin needed": (["pipeline", "run", "notify", "--file", "notify.yaml"], EXIT_FAILURE),
}


@pytest.mark.parametrize("case", list(CASES))
def test_an_error_reads_the_same_on_a_terminal_and_off_it(
    case: str, place: tuple[Path, dict[str, str]], taken_port: int, closed_port: int
) -> None:
    folder, env = place
    args, expected = CASES[case]
    if case == "registry unreachable":
        env = {**env, "CONVEYOR_REGISTRY": f"http://127.0.0.1:{closed_port}"}
    command = [sys.executable, "-m", "conveyor", *(a.format(taken_port=taken_port) for a in args)]
    code_on, shown_on = on_terminal(command, env, folder)
    code_off, shown_off = off_terminal(command, env, folder)
    assert "Traceback" not in shown_on and "Traceback" not in shown_off, shown_on
    assert (code_on, code_off) == (expected, expected), shown_on + shown_off
    assert errors(shown_on) == errors(shown_off), shown_on
    assert len(errors(shown_off)) == 1, shown_off


def test_a_failed_step_ends_the_run_the_same_way_on_a_terminal(place: tuple[Path, dict[str, str]]) -> None:
    """The live table on a terminal, a line per change off it; the outcome line and exit code are one."""
    folder, env = place
    command = [sys.executable, "-m", "conveyor", "pipeline", "run", "ship"]
    outcomes = []
    for run in (on_terminal, off_terminal):
        code, shown = run(command, env, folder)
        (last,) = [line for line in shown.splitlines() if line.startswith("run ")]
        outcomes.append((code, re.sub(r"\d{8}T\d{6}-[0-9a-f]+", "RUN", last)))
    assert outcomes[0] == outcomes[1] == (EXIT_FAILURE, "run RUN: failure (logs: conveyor pipeline logs RUN [STEP])")
