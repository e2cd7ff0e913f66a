"""What a payload log keeps of a generation: its prompt and its answer, one item each of a request record.

The generative server (``serve --log-payloads``) and the router write the same record
(``serving/payload_record.py``), so ``conveyor monitor`` reads either:

- ``inputs``: ``[{"prompt": ..., "prompt_tokens": N}]``.  The prompt is what the user asked this
  time: a chat's last user message (the system prompt is the version's, the earlier turns were
  logged when they were asked), a completion's prompt.  ``prompt_tokens`` is what the engine read,
  template and system prompt included (the answer's ``usage``; a router that saw no usage: null).
- ``outputs``: ``[{"answer": ..., "answer_tokens": N, "finish_reason": ..., "refusal": bool}]``.  A
  streamed answer is read back from its events.  ``refusal`` is judged as it is logged
  (``generative/refusal.py``), so a log whose answers are dropped or hashed still has its refusal rate.
  A request the sample leaves out keeps its ``answer`` line without the answer's text.

``--log-drop prompt`` / ``--log-hash prompt`` (and ``answer``) scrub them as a column of a table is
scrubbed: a hashed prompt is written only as its keyed hash, never in clear.
"""

from __future__ import annotations

from typing import Any

import orjson

from conveyor.generative.refusal import is_refusal

PROMPT, ANSWER = "prompt", "answer"
CHAT, COMPLETIONS = "/v1/chat/completions", "/v1/completions"
GENERATION_ROUTES = (CHAT, COMPLETIONS)


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # a message's parts: its text parts, joined
        return "".join(part.get("text", "") for part in content if isinstance(part, dict))
    return ""


def prompt_of(request: Any) -> str | None:
    """The prompt a chat or completion request asks (its last user message, or its prompt)."""
    if not isinstance(request, dict):
        return None
    messages = request.get("messages")
    if isinstance(messages, list):
        users = [m for m in messages if isinstance(m, dict) and m.get("role") == "user"]
        return _text(users[-1].get("content")) if users else None
    prompt = request.get("prompt")
    if isinstance(prompt, list) and prompt:
        prompt = prompt[0]
    return prompt if isinstance(prompt, str) else None


def prompt_item(prompt: str | None, prompt_tokens: int | None) -> dict[str, Any]:
    return {PROMPT: prompt, "prompt_tokens": prompt_tokens}


def answer_item(answer: str, answer_tokens: int | None, finish_reason: str | None) -> dict[str, Any]:
    return {
        ANSWER: answer,
        "answer_tokens": answer_tokens,
        "finish_reason": finish_reason,
        "refusal": is_refusal(answer),
    }


def unsampled(answer: dict[str, Any]) -> dict[str, Any]:
    """What a request the sample left out keeps of its answer (its ``answer`` line): the counts, not the text."""
    return {key: value for key, value in answer.items() if key != ANSWER}


def _choice_text(choice: dict[str, Any]) -> str:
    if "message" in choice:
        return _text((choice.get("message") or {}).get("content"))
    if "delta" in choice:
        return _text((choice.get("delta") or {}).get("content"))
    return _text(choice.get("text"))


def read_answer(answer: bytes) -> dict[str, Any] | None:
    """The answer item of an OpenAI answer, whole (JSON) or streamed (server-sent events); None when it is neither.

    A stream without ``usage`` counts its answer's tokens as its content events (the engine sends one
    per token; a piece that ends inside a multi-byte character waits for the next)."""
    if answer.startswith(b"data:"):
        text, finish, tokens, usage = "", None, 0, None
        for line in answer.split(b"\n"):
            if not line.startswith(b"data:") or line[5:].strip() == b"[DONE]":
                continue
            try:
                event = orjson.loads(line[5:])
            except orjson.JSONDecodeError:
                return None
            if not isinstance(event, dict):
                return None
            usage = event.get("usage") or usage
            for choice in event.get("choices") or []:
                piece = _choice_text(choice)
                tokens += 1 if piece else 0
                text += piece
                finish = choice.get("finish_reason") or finish
        counted = usage.get("completion_tokens") if isinstance(usage, dict) else tokens
        return answer_item(text, counted, finish)
    try:
        document = orjson.loads(answer)
    except orjson.JSONDecodeError:
        return None
    choices = document.get("choices") if isinstance(document, dict) else None
    if not choices or not isinstance(choices[0], dict):
        return None
    usage = document.get("usage") or {}
    return answer_item(_choice_text(choices[0]), usage.get("completion_tokens"), choices[0].get("finish_reason"))


def prompt_tokens_of(answer: bytes) -> int | None:
    """The prompt's tokens as the answer's ``usage`` counts them (the last event's, for a stream)."""
    for line in reversed(answer.split(b"\n")) if answer.startswith(b"data:") else [answer]:
        body = line[5:] if line.startswith(b"data:") else line
        if b'"usage"' not in body:
            continue
        try:
            usage = orjson.loads(body).get("usage")
        except (orjson.JSONDecodeError, AttributeError):
            return None
        if isinstance(usage, dict) and isinstance(usage.get("prompt_tokens"), int):
            return int(usage["prompt_tokens"])
    return None


def generation_items(body: bytes, answer: bytes) -> tuple[list[dict[str, Any]], list[dict[str, Any]]] | None:
    """(inputs, outputs) of a generation request and the answer the client got; None when either is unreadable."""
    try:
        request = orjson.loads(body)
    except orjson.JSONDecodeError:
        return None
    answered = read_answer(answer)
    if answered is None:
        return None
    return [prompt_item(prompt_of(request), prompt_tokens_of(answer))], [answered]
