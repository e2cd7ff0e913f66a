"""The OpenAI API's wire format, as far as a served generative version speaks it: requests checked
into typed values, answers and stream chunks built, errors in OpenAI's shape.

A request names only parameters the API has; an unknown one, a wrong type or a value out of range is
a 400 whose ``error`` names the parameter (``{"error": {"message", "type", "param", "code"}}``), so
the official clients raise their ``BadRequestError`` with it, as against OpenAI itself.
"""

from __future__ import annotations

import time
import uuid
from typing import Annotated, Any, Literal, TypeVar

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from conveyor.errors import ClientError, InvalidParameter, NotFound

Stop = str | Annotated[list[str], Field(max_length=4)]


class UnknownModel(NotFound):
    """A request for a model this server does not serve (OpenAI's 404 ``model_not_found``)."""

    param = "model"
    code = "model_not_found"


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TextPart(Strict):
    type: Literal["text"]
    text: str


class Message(Strict):
    role: Literal["system", "developer", "user", "assistant"]
    content: str | list[TextPart]
    name: str | None = None

    @property
    def text(self) -> str:
        return self.content if isinstance(self.content, str) else "".join(part.text for part in self.content)


class JsonSchema(Strict):
    name: str = Field(max_length=64)
    schema_: dict[str, Any] = Field(default_factory=dict, alias="schema")
    description: str | None = None
    strict: bool | None = None


class ResponseFormat(Strict):
    type: Literal["text", "json_object", "json_schema"]
    json_schema: JsonSchema | None = None


class StreamOptions(Strict):
    include_usage: bool = False


class Sampling(Strict):
    """What both endpoints take beside their prompt."""

    model: str
    max_tokens: int | None = Field(default=None, ge=1)
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, gt=0, le=1)
    seed: int | None = None
    stop: Stop | None = None
    stream: bool = False
    stream_options: StreamOptions | None = None
    n: Literal[1] = 1
    presence_penalty: float | None = Field(default=None, ge=-2, le=2)
    frequency_penalty: float | None = Field(default=None, ge=-2, le=2)
    user: str | None = None

    @property
    def stops(self) -> list[str]:
        return [self.stop] if isinstance(self.stop, str) else list(self.stop or [])

    @property
    def include_usage(self) -> bool:
        return self.stream_options is not None and self.stream_options.include_usage


class ChatRequest(Sampling):
    messages: list[Message] = Field(min_length=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    response_format: ResponseFormat | None = None

    @property
    def token_limit(self) -> int | None:
        return self.max_completion_tokens or self.max_tokens

    @property
    def answer_schema(self) -> dict[str, Any] | None:
        """The JSON schema the answer must follow ({} for any JSON object), None for free text."""
        form = self.response_format
        if form is None or form.type == "text":
            return None
        if form.type == "json_object":
            return {"type": "object"}
        if form.json_schema is None:
            raise InvalidParameter(
                "response_format of type json_schema needs its json_schema", "response_format.json_schema"
            )
        return form.json_schema.schema_ or {"type": "object"}


class CompletionRequest(Sampling):
    prompt: str | Annotated[list[str], Field(min_length=1, max_length=1)]
    max_tokens: int | None = Field(default=16, ge=1)  # the API's default for completions

    @property
    def text(self) -> str:
        return self.prompt if isinstance(self.prompt, str) else self.prompt[0]


class EmbeddingRequest(Strict):
    """``POST /v1/embeddings``: one text or a list of texts (token-id arrays are refused: the server tokenizes)."""

    model: str
    input: str | Annotated[list[str], Field(min_length=1, max_length=2048)]
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: int | None = Field(default=None, ge=1)
    user: str | None = None

    @property
    def texts(self) -> list[str]:
        return [self.input] if isinstance(self.input, str) else list(self.input)


_CODES = {"extra_forbidden": "unknown_parameter", "missing": "missing_required_parameter"}


Request = TypeVar("Request", bound=BaseModel)


def parse(kind: type[Request], body: bytes) -> Request:
    """The request ``body`` as ``kind``; an InvalidParameter naming the first parameter that does not hold."""
    try:
        raw = orjson.loads(body)
    except orjson.JSONDecodeError:
        raise InvalidParameter("the request body is not valid JSON", None, "invalid_json") from None
    if not isinstance(raw, dict):
        raise InvalidParameter("the request body must be a JSON object", None, "invalid_type")
    try:
        return kind.model_validate(raw)
    except ValidationError as exc:
        error = exc.errors()[0]
        param = ".".join(str(part) for part in error["loc"] if not str(part).startswith(("list[", "str")))
        kind_of = error["type"]
        if kind_of == "extra_forbidden":
            message = f"Unrecognized request argument supplied: {param}"
        else:
            message = f"Invalid value for '{param}': {error['msg']}"
        wrong_type = kind_of.endswith(("_type", "_parsing"))
        code = _CODES.get(kind_of, "invalid_type" if wrong_type else "invalid_value")
        raise InvalidParameter(message, param or None, code) from None


def error_body(exc: ClientError) -> bytes:
    """OpenAI's error shape for a refused request."""
    kind = "invalid_request_error" if exc.status < 500 else "server_error"
    return orjson.dumps(
        {
            "error": {
                "message": exc.message,
                "type": kind,
                "param": getattr(exc, "param", None),
                "code": getattr(exc, "code", None),
            }
        }
    )


def new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:24]}"


def usage(prompt_tokens: int, completion_tokens: int) -> dict[str, int]:
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }


def chat_answer(
    answer_id: str, model: str, text: str, finish: str, prompt_tokens: int, completion_tokens: int
) -> dict[str, Any]:
    return {
        "id": answer_id,
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": finish, "logprobs": None}
        ],
        "usage": usage(prompt_tokens, completion_tokens),
    }


def completion_answer(
    answer_id: str, model: str, text: str, finish: str, prompt_tokens: int, completion_tokens: int
) -> dict[str, Any]:
    return {
        "id": answer_id,
        "object": "text_completion",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "text": text, "finish_reason": finish, "logprobs": None}],
        "usage": usage(prompt_tokens, completion_tokens),
    }


def chat_chunk(answer_id: str, model: str, delta: dict[str, str], finish: str | None) -> dict[str, Any]:
    return {
        "id": answer_id,
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None}],
    }


def completion_chunk(answer_id: str, model: str, text: str, finish: str | None) -> dict[str, Any]:
    return {
        "id": answer_id,
        "object": "text_completion",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "text": text, "finish_reason": finish, "logprobs": None}],
    }


def usage_chunk(answer_id: str, model: str, kind: str, prompt_tokens: int, completion_tokens: int) -> dict[str, Any]:
    """The last chunk of a stream asked for ``stream_options.include_usage``: no choices, the counts."""
    return {
        "id": answer_id,
        "object": kind,
        "created": int(time.time()),
        "model": model,
        "choices": [],
        "usage": usage(prompt_tokens, completion_tokens),
    }


def sse(event: dict[str, Any] | str) -> bytes:
    """One server-sent event: a JSON object, or the stream's closing ``[DONE]``."""
    data = event.encode() if isinstance(event, str) else orjson.dumps(event)
    return b"data: " + data + b"\n\n"


def embedding_answer(model: str, vectors: list[list[float]] | list[str], prompt_tokens: int) -> dict[str, Any]:
    """The embeddings list: one entry per input, in order (floats, or base64 of little-endian float32)."""
    return {
        "object": "list",
        "data": [{"object": "embedding", "index": i, "embedding": vector} for i, vector in enumerate(vectors)],
        "model": model,
        "usage": {"prompt_tokens": prompt_tokens, "total_tokens": prompt_tokens},
    }
