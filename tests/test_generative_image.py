"""A GGUF version as an image: the engine from the wheel ``make engine`` cached (no compiler, no torch),
Debian's libgomp1, non-root, health-checked, the weights by digest, answering ``/v1/chat/completions``
when run.  A machine without the cached wheel is told to run ``make engine`` before anything is built."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import openai
import pytest

from conveyor.containers import serving_image
from conveyor.digest import folder_digest
from conveyor.packaging.engine_wheel import engine_wheels
from conveyor.registry.config import open_local
from tests.registry_fixtures import run_cli
from tests.smollm import smollm_gguf, tiny_gguf
from tests.test_packaging import BASE_IMAGE, base_image, podman  # noqa: F401 (base_image: a fixture)


@pytest.fixture
def chat_version(conveyor_home: Path) -> str:
    run_cli("models", "register", str(smollm_gguf()), "--name", "chat", "--alias", "production", check=True)
    return "chat:1"


def test_without_the_cached_engine_wheel_the_build_says_make_engine(conveyor_home: Path, tmp_path: Path) -> None:
    run_cli("models", "register", str(tiny_gguf(tmp_path / "tiny.gguf")), "--name", "tiny", check=True)
    empty = tmp_path / "no-wheels"
    empty.mkdir()
    result = run_cli(
        "package", "tiny:1", "-o", str(tmp_path / "ctx"), "--base-image", BASE_IMAGE,
        env={"CONVEYOR_ENGINE_WHEELS": str(empty)},
    )  # fmt: skip
    assert result.returncode != 0
    message = " ".join(result.stderr.split())
    assert "llama-cpp-python==" in message and "`make engine`" in message and str(empty) in message


@podman
@pytest.mark.slow(seconds=150)
@pytest.mark.timeout(900)  # a first build installs libgomp1 with apt and the wheels: minutes on a loaded machine
def test_a_gguf_image_runs_as_non_root_without_torch_and_answers_the_openai_client(
    chat_version: str,
    base_image: str,  # noqa: F811
    tmp_path: Path,
) -> None:
    tag, out = "localhost/conveyor-chat:1", tmp_path / "ctx"
    try:
        built = run_cli(
            "build", "chat@production", "-t", tag, "--base-image", base_image, "--context", str(out), "--json",
            timeout=900,
        )  # fmt: skip
        assert built.returncode == 0, built.stdout + built.stderr
        assert json.loads(built.stdout)["size_bytes"] > 0
        assert folder_digest(out / "model") == open_local().resolve(chat_version).digest  # the weights by digest
        requirements = (out / "requirements.txt").read_text()
        assert "llama-cpp-python==" in requirements and "torch" not in requirements
        assert [p.name for p in (out / "wheels").glob("llama_cpp_python-*")] == [
            p.name for p in engine_wheels().glob("llama_cpp_python-*.whl")
        ]  # the cached wheel itself, not a build
        dockerfile = (out / "Dockerfile").read_text()
        assert dockerfile.index("libgomp1") < dockerfile.index("requirements.txt")  # its layer under every change

        def inspected(field: str) -> Any:
            run = ["podman", "image", "inspect", tag, "--format", f"{{{{json .Config.{field}}}}}"]
            return json.loads(subprocess.run(run, capture_output=True, text=True, check=True).stdout)

        assert inspected("User") == "10001:10001" and "/v2/health/ready" in " ".join(inspected("Healthcheck")["Test"])
        probe = "import importlib.util as u, llama_cpp; assert u.find_spec('torch') is None; print('ok')"
        inside = subprocess.run(
            ["podman", "run", "--rm", "--entrypoint", "python3", tag, "-c", probe], capture_output=True, text=True
        )
        assert inside.stdout.strip() == "ok", inside.stderr  # the engine loads (libgomp1 is there), no torch
        with serving_image(tag, timeout=180) as (url, _, _):
            client = openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0)
            answer = client.chat.completions.create(
                model="chat", messages=[{"role": "user", "content": "Say hello."}], temperature=0, max_tokens=4
            )
            assert answer.choices[0].message.content and answer.usage and answer.usage.completion_tokens > 0
        smoke = run_cli("smoke", tag, timeout=300)
        assert smoke.returncode == 0 and "chat" in smoke.stdout, smoke.stdout + smoke.stderr
    finally:
        subprocess.run(["podman", "rmi", tag], capture_output=True, timeout=120)
