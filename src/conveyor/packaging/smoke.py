"""``conveyor smoke IMAGE``: start the container, wait for readiness, call it, remove it.

A classic version is asked ``/predict``; a generative one (its ``ai.conveyor.model.task`` label says
``text-generation``) a short chat on ``/v1/chat/completions``, as an OpenAI client would ask it."""

from __future__ import annotations

from dataclasses import dataclass, field

import httpx

from conveyor.containers import image_labels, serving_image
from conveyor.packaging import TASK_LABEL
from conveyor.task_kinds import Task


@dataclass
class SmokeResult:
    ok: bool
    steps: list[tuple[str, bool, str]] = field(default_factory=list)


def smoke(image: str, timeout: float = 120, text: str = "MLOps is critical for robustness") -> SmokeResult:
    """Readiness (with the container's logs on failure), an answer (/predict or a chat), /v2 health."""
    result = SmokeResult(ok=True)

    def step(name: str, passed: bool, detail: str) -> None:
        result.steps.append((name, passed, detail))
        result.ok &= passed

    with serving_image(image, timeout) as (url, engine, _):
        step("ready", True, f"{url}/v2/health/ready answered 200")
        task = Task.of(image_labels(engine, image).get(TASK_LABEL))
        if task is not None and task.generates:
            chat = {"model": "smoke", "messages": [{"role": "user", "content": text}], "max_tokens": 8}
            model = httpx.get(f"{url}/v1/models", timeout=10).json()["data"][0]["id"]
            response = httpx.post(f"{url}/v1/chat/completions", json={**chat, "model": model}, timeout=60)
            answer = response.json()["choices"][0]["message"]["content"] if response.status_code == 200 else None
            step(
                "chat",
                isinstance(answer, str),
                f"POST /v1/chat/completions {text!r} -> {response.status_code} {response.text[:120]}",
            )
        else:
            response = httpx.post(f"{url}/predict", json=[text], timeout=30)
            try:
                body = response.json()
            except ValueError:
                body = None
            step(
                "predict",
                response.status_code == 200 and body is not None,
                f"POST /predict {[text]} -> {response.status_code} {response.text[:120]}",
            )
        for path in ("/v2/health/live", "/v2/health/ready"):
            health = httpx.get(url + path, timeout=10)
            step(path, health.status_code == 200, f"{path} -> {health.status_code}")
    return result
