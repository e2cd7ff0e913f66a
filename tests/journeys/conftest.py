"""User journeys, black-box: Conveyor's built wheel installed into a fresh virtual environment
(never the editable checkout), driven only through the ``conveyor`` command and the public HTTP
APIs, from a folder outside the checkout, with the clients users have (curl, urllib, requests,
httpx, tritonclient, the KServe SDK).

The clients run in this test process (the developer's environment), the servers in the user's:
two environments, as on a user's machine.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from tests import models
from tests.conftest import REPO, free_port
from tests.waiting import wait_for

UV = Path(sys.executable).parent / "uv"


@pytest.fixture(scope="session")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Conveyor's wheel, built from the checkout the way a release is."""
    out = tmp_path_factory.mktemp("dist")
    subprocess.run(
        [str(UV), "build", "--wheel", "--quiet", "--out-dir", str(out), str(REPO)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    (built,) = out.glob("conveyor_ml-*.whl")
    return built


@pytest.fixture(scope="session")
def user_venv(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh virtual environment with the wheel, every feature's extra (``[all]``) and their declared
    dependencies (pinned by the lock); the wheel alone is test_slim_install's."""
    venv = tmp_path_factory.mktemp("user") / "venv"
    subprocess.run([str(UV), "venv", "--quiet", "--python", sys.executable, str(venv)], check=True, timeout=120)
    python = str(venv / "bin" / "python")
    lock = str(REPO / "requirements.lock")
    subprocess.run(
        [str(UV), "pip", "install", "--quiet", "--python", python, f"{wheel}[all]", "--constraint", lock],
        check=True,
        timeout=600,
    )
    return venv


@dataclass
class Spawned:
    """A long-running ``conveyor`` command (a server) started by the user."""

    process: subprocess.Popen[bytes]
    log_path: Path
    url: str = ""

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self, sig: int = signal.SIGTERM) -> int:
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode


@dataclass
class User:
    """A person at a terminal: a working folder outside the checkout, their own CONVEYOR_HOME."""

    venv: Path
    workdir: Path
    env: dict[str, str] = field(default_factory=dict)
    spawned: list[Spawned] = field(default_factory=list)

    @property
    def conveyor_bin(self) -> str:
        return str(self.venv / "bin" / "conveyor")

    def environ(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        base = {k: v for k, v in os.environ.items() if not k.startswith(("CONVEYOR_", "PYTHON", "VIRTUAL_ENV"))}
        base["PATH"] = f"{self.venv / 'bin'}:{base.get('PATH', '')}"
        return {**base, **self.env, **(extra or {})}

    def run(
        self, *args: str, env: dict[str, str] | None = None, timeout: float = 300, input: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [self.conveyor_bin, *args],
            capture_output=True,
            text=True,
            cwd=self.workdir,
            env=self.environ(env),
            timeout=timeout,
            input=input,
        )

    def ok(self, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        result = self.run(*args, env=env)
        assert result.returncode == 0, (
            f"conveyor {' '.join(args)} exited {result.returncode}:\n{result.stdout}\n{result.stderr}"
        )
        return result

    def spawn(self, *args: str, env: dict[str, str] | None = None, name: str = "server") -> Spawned:
        log_path = self.workdir / f"{name}-{len(self.spawned)}.log"
        with open(log_path, "wb") as log:
            process = subprocess.Popen(
                [self.conveyor_bin, *args],
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.workdir,
                env=self.environ(env),
            )
        spawned = Spawned(process, log_path)
        self.spawned.append(spawned)
        return spawned

    def serve(self, model: str, *args: str, env: dict[str, str] | None = None) -> Spawned:
        port = free_port()
        server = self.spawn("serve", model, "--port", str(port), *args, env=env, name="serve")
        server.url = f"http://127.0.0.1:{port}"
        wait_http(server, "/v2/health/ready")
        return server

    def close(self) -> None:
        for spawned in self.spawned:
            spawned.stop()


def wait_http(server: Spawned, path: str, timeout: float = 60, verify: object = True) -> None:
    """Wait until ``server`` answers ``path`` with 200; fail (with its log) if it exits or the time runs out."""

    def answers() -> bool:
        if server.process.poll() is not None:
            raise AssertionError(f"{server.process.args} exited with {server.process.returncode}:\n{server.log()}")
        return httpx.get(server.url + path, timeout=1, verify=verify).status_code == 200  # type: ignore[arg-type]

    try:
        wait_for(answers, timeout=timeout, what=f"{server.url}{path} to answer 200")
    except AssertionError as exc:
        raise AssertionError(f"{exc}:\n{server.log()}") from None


@pytest.fixture
def user(user_venv: Path, tmp_path: Path) -> Iterator[User]:
    workdir = tmp_path / "project"
    workdir.mkdir()
    assert REPO not in workdir.resolve().parents
    person = User(user_venv, workdir, env={"CONVEYOR_HOME": str(tmp_path / "conveyor-home"), "HOME": str(tmp_path)})
    yield person
    person.close()


@pytest.fixture(scope="session")
def vote_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A text model (model.onnx, tokenizer.json, model.yaml) whose answers the tests can compute."""
    return models.model_dir(tmp_path_factory.mktemp("journey-models") / "votes", "votes", models.word_vote_model)


def copy_model(source: Path, dest: Path) -> Path:
    shutil.copytree(source, dest)
    return dest
