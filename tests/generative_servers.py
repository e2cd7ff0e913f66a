"""Generative versions served in this process on loopback ports: one SmolLM2 engine per system prompt,
under uvicorn in a thread, for tests whose code under test talks HTTP to a URL (verify, challenge)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import uvicorn

from conveyor.containers import free_port
from conveyor.generative.app import create_app
from conveyor.generative.config import GenerationConfig
from conveyor.generative.engine import Engine
from tests.smollm import smollm_gguf


@contextmanager
def served_chat(system_prompt: str, version: str, max_tokens: int = 16) -> Iterator[str]:
    """The URL of SmolLM2 served as ``chat:version`` with this system prompt, greedy by default."""
    config = GenerationConfig(system_prompt=system_prompt, temperature=0, max_tokens=max_tokens)
    engine = Engine(smollm_gguf(), config, slots=1, context_size=512, threads=1)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(engine, "chat", version), host="127.0.0.1", port=port,
                                           log_level="warning", lifespan="on"))  # fmt: skip
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if httpx.get(url + "/v2/health/ready", timeout=2).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    else:
        raise TimeoutError(f"chat:{version} did not become ready")
    try:
        yield url
    finally:
        server.should_exit = True
        thread.join(30)
