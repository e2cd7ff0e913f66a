"""A user's generative journey from the built wheel with its ``generative`` extra (the engine installed from
the cached wheel ``make engine`` built, as a user's machine would after building it once): the SmolLM2
GGUF registered, served by ``conveyor serve chat@production``, and the official ``openai`` client
chatting, streaming and getting schema-valid JSON from the real process; a stream the client closes
frees its slot, counted as cancelled."""

from __future__ import annotations

import json
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import httpx
import jsonschema
import openai
import pytest

from tests.conftest import REPO
from tests.journeys.conftest import UV, User
from tests.smollm import smollm_gguf
from tests.waiting import wait_for


def engine_wheels() -> Path:
    """Where ``make engine`` keeps the engine's wheel (the Makefile's ENGINE_WHEELS)."""
    import os

    default = Path.home() / ".cache" / "conveyor" / "engine-wheels"
    return Path(os.environ.get("CONVEYOR_ENGINE_WHEELS", default))


@pytest.fixture(scope="module")
def generative_venv(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    venv = tmp_path_factory.mktemp("generative-user") / "venv"
    subprocess.run([str(UV), "venv", "--quiet", "--python", sys.executable, str(venv)], check=True, timeout=120)
    pins = venv.parent / "engine.txt"
    pins.write_text(f"llama-cpp-python=={version('llama-cpp-python')}\n")  # the cached wheel's, never a compile
    subprocess.run(
        [str(UV), "pip", "install", "--quiet", "--python", str(venv / "bin" / "python"), f"{wheel}[generative]",
         "--constraint", str(REPO / "requirements.lock"), "--constraint", str(pins),
         "--find-links", str(engine_wheels()), "--no-build"],
        check=True, timeout=600,
    )  # fmt: skip
    return venv


def test_a_gguf_model_registered_served_and_chatted_with_by_the_openai_client(
    generative_venv: Path, tmp_path: Path
) -> None:
    workdir = tmp_path / "project"
    workdir.mkdir()
    user = User(generative_venv, workdir, env={"CONVEYOR_HOME": str(tmp_path / "home"), "HOME": str(tmp_path)})
    try:
        registered = user.ok("models", "register", str(smollm_gguf()), "--name", "chat", "--alias", "production")
        assert "registered chat:1 @production" in registered.stdout
        server = user.serve("chat@production", "--slots", "2", "--context-size", "512", "--threads", "1")
        client = openai.OpenAI(base_url=f"{server.url}/v1", api_key="unused", max_retries=0)

        answer = client.chat.completions.create(
            model="chat", messages=[{"role": "user", "content": "What is the capital of France?"}], temperature=0,
            max_tokens=6,
        )  # fmt: skip
        assert answer.choices[0].message.content and answer.usage is not None and answer.usage.completion_tokens > 0
        streamed = client.chat.completions.create(
            model="chat", messages=[{"role": "user", "content": "What is the capital of France?"}], temperature=0,
            max_tokens=6, stream=True,
        )  # fmt: skip
        assert "".join(c.choices[0].delta.content or "" for c in streamed) == answer.choices[0].message.content

        schema = {"type": "object", "properties": {"city": {"type": "string", "maxLength": 12}}, "required": ["city"]}
        structured = client.chat.completions.create(
            model="chat", messages=[{"role": "user", "content": "Name a city, as JSON."}], temperature=0,
            max_tokens=24, response_format={"type": "json_schema", "json_schema": {"name": "city", "schema": schema}},
        )  # fmt: skip
        jsonschema.validate(json.loads(structured.choices[0].message.content or ""), schema)

        long = {"model": "chat", "prompt": "Tell a long story:", "max_tokens": 400, "temperature": 0.9, "stream": True}
        for _ in range(3):  # more streams closed early than slots: each must hand its slot back
            with httpx.stream("POST", f"{server.url}/v1/completions", json=long, timeout=30) as response:
                assert response.status_code == 200
                next(response.iter_lines())
        done = client.completions.create(model="chat", prompt="Hi", max_tokens=2, timeout=30)
        assert done.choices[0].text is not None
        cancelled = 'conveyor_generations_total{finish="cancelled",model="chat",version="1"} 3.0'
        wait_for(lambda: cancelled in httpx.get(f"{server.url}/metrics").text, timeout=10, what="3 cancelled answers")
        metrics = httpx.get(f"{server.url}/metrics").text
        assert 'conveyor_generation_time_to_first_token_seconds_count{model="chat",version="1"}' in metrics
    finally:
        user.close()
