"""A GGUF version served OpenAI-compatible, in-process: the official ``openai`` client (sync, async,
streaming) against the ASGI app, OpenAI's error shape, grammar-constrained JSON, shared slots, a
cancelled stream freeing its slot, and the generation metrics.  One engine (SmolLM2-135M, a 512-token
context, two slots) is loaded once for the module; answers are short and greedy or seeded."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import jsonschema
import openai
import pytest
from starlette.testclient import TestClient

from conveyor.generative.app import create_app
from conveyor.generative.config import GenerationConfig
from conveyor.generative.engine import Engine
from conveyor.serving.payload_hash import is_hashed
from conveyor.serving.payloads import PayloadLogConfig
from tests.smollm import smollm_gguf

HELLO = [{"role": "user", "content": "What is the capital of France?"}]


@pytest.fixture(scope="module")
def engine() -> Iterator[Engine]:
    loaded = Engine(
        smollm_gguf(), GenerationConfig(system_prompt="You are terse.", max_tokens=16), slots=2, context_size=512,
        threads=1,
    )  # fmt: skip
    loaded.load()
    yield loaded
    loaded.close()


@pytest.fixture(scope="module")
def http(engine: Engine) -> Iterator[TestClient]:
    with TestClient(create_app(engine, "chat", "3")) as client:
        yield client


@pytest.fixture(scope="module")
def client(http: TestClient) -> openai.OpenAI:
    return openai.OpenAI(base_url="http://testserver/v1", api_key="unused", http_client=http, max_retries=0)


def test_the_openai_client_chats_and_counts_tokens(client: openai.OpenAI) -> None:
    answer = client.chat.completions.create(model="chat", messages=HELLO, temperature=0, max_tokens=6)  # type: ignore[arg-type]
    text = answer.choices[0].message.content
    assert text  # a 135M model's words are its own: what is asserted is the protocol and determinism
    assert answer.choices[0].finish_reason in ("stop", "length") and answer.model == "chat"
    assert answer.usage is not None and answer.usage.prompt_tokens > 10 and 0 < answer.usage.completion_tokens <= 6
    again = client.chat.completions.create(model="chat@production", messages=HELLO, temperature=0, max_tokens=6)  # type: ignore[arg-type]
    assert again.choices[0].message.content == text  # greedy: the same answer


def test_a_stream_is_the_same_answer_in_pieces_with_usage_last(client: openai.OpenAI) -> None:
    whole = client.chat.completions.create(model="chat", messages=HELLO, temperature=0, max_tokens=8)  # type: ignore[arg-type]
    chunks = list(
        client.chat.completions.create(
            model="chat", messages=HELLO, temperature=0, max_tokens=8, stream=True,  # type: ignore[arg-type]
            stream_options={"include_usage": True},
        )
    )  # fmt: skip
    pieces = [c.choices[0].delta.content or "" for c in chunks if c.choices]
    assert len([p for p in pieces if p]) > 2 and "".join(pieces) == whole.choices[0].message.content
    assert chunks[0].choices[0].delta.role == "assistant"
    assert chunks[-1].choices == [] and chunks[-1].usage == whole.usage


def test_completions_take_seed_and_stop(client: openai.OpenAI) -> None:
    def sample(seed: int) -> str:
        done = client.completions.create(
            model="chat", prompt="Once upon a time", temperature=1.0, seed=seed, max_tokens=5
        )
        return done.choices[0].text

    assert sample(7) == sample(7)  # seeded sampling repeats itself
    greedy = client.completions.create(model="chat", prompt="1, 2, 3, 4,", temperature=0, max_tokens=8)
    assert " 5" in greedy.choices[0].text
    stopped = client.completions.create(model="chat", prompt="1, 2, 3, 4,", temperature=0, max_tokens=8, stop=[" 6"])
    assert stopped.choices[0].text == greedy.choices[0].text.split(" 6")[0]
    assert stopped.choices[0].finish_reason == "stop"


def test_a_json_schema_answer_is_decoded_under_its_grammar(client: openai.OpenAI) -> None:
    schema = {
        "type": "object",
        "properties": {"city": {"type": "string", "maxLength": 12}, "population": {"type": "integer"}},
        "required": ["city", "population"],
        "additionalProperties": False,
    }
    answer = client.chat.completions.create(
        model="chat", messages=[{"role": "user", "content": "Describe Paris as JSON."}], temperature=0, max_tokens=60,
        response_format={"type": "json_schema", "json_schema": {"name": "city", "schema": schema}},
    )  # fmt: skip
    assert answer.choices[0].finish_reason == "stop"
    jsonschema.validate(json.loads(answer.choices[0].message.content or ""), schema)


@pytest.mark.parametrize(
    ("body", "param", "code"),
    [
        ({"model": "chat", "messages": []}, "messages", "invalid_value"),
        ({"model": "chat"}, "messages", "missing_required_parameter"),
        ({"model": "chat", "messages": HELLO, "temprature": 0}, "temprature", "unknown_parameter"),
        ({"model": "chat", "messages": HELLO, "max_tokens": "ten"}, "max_tokens", "invalid_type"),
        ({"model": "chat", "messages": HELLO, "temperature": 3}, "temperature", "invalid_value"),
        (
            {"model": "chat", "messages": [{"role": "user", "content": "word " * 600}]},
            "messages",
            "context_length_exceeded",
        ),
    ],
)
def test_bad_input_is_a_400_in_openai_error_shape(
    http: TestClient, body: dict[str, object], param: str, code: str
) -> None:
    response = http.post("/v1/chat/completions", json=body)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"} and error["message"]
    assert (error["type"], error["param"], error["code"]) == ("invalid_request_error", param, code)


def test_the_clients_raise_what_the_server_refused(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as refused:
        client.chat.completions.create(model="chat", messages=[], max_tokens=4)
    assert refused.value.param == "messages"
    with pytest.raises(openai.NotFoundError) as missing:
        client.chat.completions.create(model="gpt-4o", messages=HELLO, max_tokens=4)  # type: ignore[arg-type]
    assert missing.value.code == "model_not_found"
    assert [m.id for m in client.models.list()] == ["chat"]


def test_the_async_client_is_answered_by_slots_shared_between_requests(engine: Engine) -> None:
    app = create_app(engine, "chat", "3")

    async def three() -> list[str]:
        async with app.router.lifespan_context(app):  # this event loop's queue of the slots
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as raw:
                client = openai.AsyncOpenAI(base_url="http://testserver/v1", api_key="unused", http_client=raw)
                asks = [
                    client.chat.completions.create(model="chat", messages=HELLO, temperature=0, max_tokens=4)  # type: ignore[arg-type]
                    for _ in range(3)  # one more than the slots: it waits for one
                ]
                answers = await asyncio.gather(*asks)
            assert app.state.endpoints.slots.free == 2
            return [answer.choices[0].message.content or "" for answer in answers]

    answers = asyncio.run(three())
    assert len(set(answers)) == 1 and answers[0]


def test_generation_is_measured_per_version(http: TestClient) -> None:
    body = {"model": "chat", "messages": HELLO, "max_tokens": 6, "temperature": 0, "stream": True}
    with http.stream("POST", "/v1/chat/completions", json=body) as response:
        assert response.status_code == 200 and response.headers["content-type"].startswith("text/event-stream")
        lines = [line for line in response.iter_lines() if line]
    assert lines[-1] == "data: [DONE]" and all(line.startswith("data: ") for line in lines)
    metrics = http.get("/metrics").text
    labels = 'model="chat",version="3"'
    for name in ("time_to_first_token_seconds_count", "inter_token_seconds_count", "queue_seconds_count"):
        assert f"conveyor_generation_{name}{{{labels}}}" in metrics
    assert f"conveyor_generation_completion_tokens_total{{{labels}}}" in metrics
    assert f'conveyor_generations_total{{finish="length",{labels}}}' in metrics
    assert http.get("/v2/health/ready").json() == {"ready": True}


def test_the_payload_log_keeps_prompts_hashed_and_answers_with_their_tokens(engine: Engine, tmp_path: Path) -> None:
    """``serve --log-payloads --log-hash prompt``: a chat and a streamed completion logged as prompt and answer,
    the prompt only as its hash (never in clear anywhere in the log)."""
    secret = "My account number is 12345"
    config = PayloadLogConfig(str(tmp_path), sample=1.0, hash=("prompt",))
    with TestClient(create_app(engine, "chat", "3", payload_log=config)) as logged:
        chat = logged.post(
            "/v1/chat/completions",
            json={
                "model": "chat",
                "messages": [{"role": "user", "content": secret}],
                "max_tokens": 4,
                "temperature": 0,
            },
            headers={"x-request-id": "chat-1"},
        ).json()
        streamed = logged.post(
            "/v1/completions",
            json={"model": "chat", "prompt": secret, "max_tokens": 4, "stream": True, "temperature": 0, "seed": 7},
        )  # greedy: the same 4 tokens whatever the engine's sampler drew before (another test's order)
        assert streamed.status_code == 200 and streamed.text.endswith("data: [DONE]\n\n")
    files = list((tmp_path / "chat" / "3").glob("payloads-*.jsonl"))
    text = "".join(f.read_text() for f in files)
    assert secret not in text and "12345" not in text
    records = {r["route"]: r for r in map(json.loads, text.splitlines()) if r["kind"] == "request"}
    asked = records["/v1/chat/completions"]
    assert asked["request_id"] == "chat-1" and is_hashed(asked["inputs"][0]["prompt"])
    assert asked["inputs"][0]["prompt_tokens"] == chat["usage"]["prompt_tokens"]
    assert asked["outputs"][0]["answer"] == chat["choices"][0]["message"]["content"]
    assert asked["outputs"][0]["answer_tokens"] == chat["usage"]["completion_tokens"]
    completion = records["/v1/completions"]["outputs"][0]
    assert completion["finish_reason"] == "length" and completion["answer_tokens"] == 4
    assert records["/v1/completions"]["inputs"][0]["prompt"] == asked["inputs"][0]["prompt"]  # equal prompts hash alike
