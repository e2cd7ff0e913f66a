"""The text of a generation answer, for the canary analysis of a generative version.

A generative version answers OpenAI's ``/v1/chat/completions`` and ``/v1/completions`` with a 200 whose
content no label or value reads: a refusal, a switch of language or an answer twice as long are all
200s.  The router keeps the latest answers' texts per backend (and, for mirrored requests, the pair of
stable's and the canary's answers to the same prompt); the analysis compares them by meaning, length
and refusals off the request path.  A streamed answer (``text/event-stream``) is its deltas joined.
"""

from __future__ import annotations

from typing import Any

import orjson

GENERATION_ROUTES = frozenset({"/v1/chat/completions", "/v1/completions"})
MAX_READ_BYTES = 1_000_000
MAX_KEPT_CHARACTERS = 2_000  # an answer's head is what its meaning, length class and refusal are read from


def is_generation(path: str) -> bool:
    return path in GENERATION_ROUTES


def _choice_text(choice: Any, streamed: bool) -> str:
    if not isinstance(choice, dict):
        return ""
    if "text" in choice:  # /v1/completions
        return str(choice.get("text") or "")
    message = choice.get("delta" if streamed else "message")
    return str(message.get("content") or "") if isinstance(message, dict) else ""


def answer_text(body: bytes) -> str | None:
    """The answer's text (its first choice), from a JSON answer or a stream of server-sent events."""
    if len(body) > MAX_READ_BYTES:
        return None
    try:
        if body.lstrip().startswith(b"data:"):
            pieces = []
            for line in body.splitlines():
                data = line[5:].strip() if line.startswith(b"data:") else b""
                if data and data != b"[DONE]":
                    choices = orjson.loads(data).get("choices") or []
                    pieces.append(_choice_text(choices[0], True) if choices else "")
            return "".join(pieces)[:MAX_KEPT_CHARACTERS]
        choices = orjson.loads(body).get("choices") or []
        return _choice_text(choices[0], False)[:MAX_KEPT_CHARACTERS] if choices else None
    except (orjson.JSONDecodeError, AttributeError, TypeError):
        return None
