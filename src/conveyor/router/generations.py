"""The text of a generation answer, for the canary analysis of a generative version.

A generative version answers OpenAI's ``/v1/chat/completions`` and ``/v1/completions`` with a 200 whose
content no label or value reads: a refusal, a switch of language or an answer twice as long are all
200s.  The router keeps the latest answers' texts per backend (and, for mirrored requests, the pair of
stable's and the canary's answers to the same prompt); the analysis compares them by meaning, length
and refusals off the request path.  A streamed answer (``text/event-stream``) is its deltas joined.
"""

from __future__ import annotations

from conveyor.generative.payloads import ANSWER, GENERATION_ROUTES, read_answer

MAX_READ_BYTES = 1_000_000
MAX_KEPT_CHARACTERS = 2_000  # an answer's head is what its meaning, length class and refusal are read from


def is_generation(path: str) -> bool:
    return path in GENERATION_ROUTES


def answer_text(body: bytes) -> str | None:
    """The answer's text (its first choice), from a JSON answer or a stream of server-sent events
    (read as the payload log reads it, ``generative/payloads.read_answer``)."""
    if len(body) > MAX_READ_BYTES:
        return None
    answered = read_answer(body.lstrip())
    return None if answered is None else str(answered[ANSWER])[:MAX_KEPT_CHARACTERS]
