"""A model-server stand-in with injectable faults, for rollout tests: python -m tests.rollout_backend MODE PORT [MS].

MS: every prediction first waits that many milliseconds (a model's compute time, without the CPU).

It answers the classic contract like the word-vote test models (positive when more
positive than negative words) and reports ready on /v2/health/ready.

healthy       correct answers
fail20        every fifth prediction answers HTTP 500 (20%)
string_false  {"positive": "false"} style answers: the boolean as a string, HTTP 200
invert        every prediction inverted, HTTP 200
"""

from __future__ import annotations

import asyncio
import sys
from typing import Any

import orjson
import uvicorn

from tests.models import expected_positive


def make_app(mode: str, delay_ms: float = 0.0):  # type: ignore[no-untyped-def]
    counter = [0]

    async def send_json(send: Any, status: int, payload: Any) -> None:
        body = orjson.dumps(payload)
        await send(
            {"type": "http.response.start", "status": status, "headers": [(b"content-type", b"application/json")]}
        )
        await send({"type": "http.response.body", "body": body})

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        path = scope["path"]
        if path in ("/v2/health/ready", "/v2/health/live"):
            await send_json(send, 200, {"ready": True})
            return
        if path != "/predict" or scope["method"] != "POST":
            await send_json(send, 404, {"error": f"no route {path}"})
            return
        content_type = dict(scope["headers"]).get(b"content-type", b"").split(b";")[0].strip()
        if content_type != b"application/json":
            await send_json(send, 415, {"error": "Content-Type must be application/json"})
            return
        try:
            texts = orjson.loads(body)
        except orjson.JSONDecodeError:
            await send_json(send, 400, {"error": "body is not valid JSON"})
            return
        if not isinstance(texts, list) or not texts or not all(isinstance(t, str) for t in texts):
            await send_json(send, 422, {"error": "body must be a non-empty JSON array of strings"})
            return
        counter[0] += 1
        if delay_ms:
            await asyncio.sleep(delay_ms / 1000)
        if mode == "fail20" and counter[0] % 5 == 0:
            await send_json(send, 500, {"error": "injected failure"})
            return
        answers: list[Any] = []
        for text in texts:
            positive = expected_positive(text)
            if mode == "invert":
                positive = not positive
            answers.append({"positive": str(positive).lower() if mode == "string_false" else positive})
        await send_json(send, 200, answers[0] if len(answers) == 1 else answers)

    return app


if __name__ == "__main__":
    uvicorn.run(
        make_app(sys.argv[1], float(sys.argv[3]) if len(sys.argv) > 3 else 0.0),
        host="127.0.0.1",
        port=int(sys.argv[2]),
        log_level="warning",
    )
