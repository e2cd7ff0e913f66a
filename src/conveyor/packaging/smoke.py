"""``conveyor smoke IMAGE``: start the container, wait for readiness, call it, remove it."""

from __future__ import annotations

from dataclasses import dataclass, field

import httpx

from conveyor.containers import serving_image


@dataclass
class SmokeResult:
    ok: bool
    steps: list[tuple[str, bool, str]] = field(default_factory=list)


def smoke(image: str, timeout: float = 120, text: str = "MLOps is critical for robustness") -> SmokeResult:
    """Readiness (with the container's logs on failure), /predict answering JSON, /v2 health."""
    result = SmokeResult(ok=True)

    def step(name: str, passed: bool, detail: str) -> None:
        result.steps.append((name, passed, detail))
        result.ok &= passed

    with serving_image(image, timeout) as (url, _, _):
        step("ready", True, f"{url}/v2/health/ready answered 200")
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
