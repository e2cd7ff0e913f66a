"""Journey: register a model, serve it from the registry cache, call it with every client users have."""

from __future__ import annotations

import asyncio
import json
import subprocess
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
import requests
import tritonclient.http as triton
from tritonclient.utils import InferenceServerException

from tests.conftest import free_port
from tests.journeys.conftest import Spawned, User, copy_model

GOOD, BAD = "good great", "bad awful"
TEN_MB = json.dumps(["x" * 10_000_000]).encode()


@pytest.fixture(scope="module")
def served(
    user_venv: Path, vote_folder: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[User, Spawned]]:
    """votes:1 and votes:2 registered (the same files), @production on 2, served from the cache."""
    root = tmp_path_factory.mktemp("serving-journey")
    person = User(user_venv, root / "project", env={"CONVEYOR_HOME": str(root / "home"), "HOME": str(root)})
    person.workdir.mkdir()
    copy_model(vote_folder, person.workdir / "models" / "votes")
    person.ok("models", "register", "models/votes", "--name", "votes")
    person.ok("models", "register", "models/votes", "--name", "votes", "--alias", "production")
    server = person.serve("votes@production")
    yield person, server
    person.close()


def _curl(*args: str) -> tuple[int, str]:
    result = subprocess.run(["curl", "-s", "-w", "\n%{http_code}", *args], capture_output=True, text=True, timeout=60)
    body, _, status = result.stdout.rpartition("\n")
    return int(status), body


def test_serve_from_the_registry_says_what_it_serves(served: tuple[User, Spawned]) -> None:
    _, server = served
    assert "serving votes:2 (sha256:" in server.log() and "verified" in server.log()


def test_the_classic_call_answers_a_json_boolean_with_every_client(served: tuple[User, Spawned]) -> None:
    _, server = served
    url = server.url + "/predict"
    for text, expected in ((GOOD, True), (BAD, False)):
        payload = json.dumps([text])
        status, body = _curl("-X", "POST", "-H", "Content-Type: application/json", "--data", payload, url)
        assert status == 200 and json.loads(body) == {"positive": expected}, body

        request = urllib.request.Request(url, data=payload.encode(), headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=10) as answer:
            assert json.loads(answer.read()) == {"positive": expected}

        assert requests.post(url, json=[text], timeout=10).json() == {"positive": expected}
        answer = httpx.post(url, json=[text])
        assert answer.status_code == 200 and answer.json()["positive"] is expected  # a boolean, never "false"


def test_tritonclient_speaks_v2_to_it(served: tuple[User, Spawned]) -> None:
    _, server = served
    client = triton.InferenceServerClient(url=server.url.removeprefix("http://"))
    assert client.is_server_live() and client.is_server_ready() and client.is_model_ready("votes")
    metadata = client.get_model_metadata("votes")
    assert metadata["versions"] == ["2"]  # the registry's version, not model.yaml's "1"
    text_input = triton.InferInput("text", [2], "BYTES")
    text_input.set_data_from_numpy(np.array([GOOD.encode(), BAD.encode()], dtype=object))
    for binary in (True, False):
        outputs = [triton.InferRequestedOutput("label", binary_data=binary)]
        result = client.infer("votes", [text_input], outputs=outputs)
        assert [v.decode() if isinstance(v, bytes) else v for v in result.as_numpy("label")] == ["positive", "negative"]
        assert result.get_response()["model_version"] == "2"
    with pytest.raises(InferenceServerException, match="model 'nope' not found"):
        client.infer("nope", [text_input])
    with pytest.raises(InferenceServerException, match="unknown output"):
        client.infer("votes", [text_input], outputs=[triton.InferRequestedOutput("embedding")])
    client.close()


def test_the_kserve_sdk_speaks_v2_to_it(served: tuple[User, Spawned]) -> None:
    from kserve import InferenceRESTClient, InferInput, InferRequest, RESTConfig

    _, server = served

    async def call() -> tuple[bool, list[str]]:
        client = InferenceRESTClient(RESTConfig(protocol="v2", retries=1, timeout=10))
        try:
            ready = await client.is_model_ready(server.url, "votes")
            request = InferRequest(
                model_name="votes",  # sent in the body: the server must ignore it, not refuse it
                infer_inputs=[InferInput(name="text", shape=[2], datatype="BYTES", data=[GOOD, BAD])],
                request_id="journey-1",
            )
            response = await client.infer(server.url, request, model_name="votes")
            labels = next(o.data for o in response.outputs if o.name == "label")
            return ready, list(labels)
        finally:
            await client.close()

    assert asyncio.run(call()) == (True, ["positive", "negative"])


def test_bad_input_gets_a_4xx_json_message_through_each_client(served: tuple[User, Spawned]) -> None:
    _, server = served
    url = server.url + "/predict"

    status, body = _curl("-X", "POST", "-H", "Content-Type: application/json", "--data", "[42]", url)
    assert status == 422 and json.loads(body) == {"error": "item 0 must be a string, got int"}
    answer = requests.post(url, data="[42]", headers={"Content-Type": "application/json"}, timeout=10)
    assert answer.status_code == 422 and "item 0" in answer.json()["error"]
    answer = httpx.post(url, content=b'["unclosed', headers={"Content-Type": "application/json"})
    assert answer.status_code == 400 and "not valid JSON" in answer.json()["error"]
    answer = httpx.post(url, content=b'["x"]', headers={"Content-Type": "text/plain"})
    assert answer.status_code == 415 and "application/json" in answer.json()["error"]

    # 10 MB: every client reads the 413 and its message, also those that send the whole body first
    try:
        urllib.request.urlopen(urllib.request.Request(url, data=TEN_MB, headers={"Content-Type": "application/json"}))
        raise AssertionError("a 10 MB body was accepted")
    except urllib.error.HTTPError as refused:
        assert refused.code == 413 and "exceeds the limit" in json.loads(refused.read())["error"]
    for answer in (
        requests.post(url, data=TEN_MB, headers={"Content-Type": "application/json"}, timeout=30),
        httpx.post(url, content=TEN_MB, headers={"Content-Type": "application/json"}, timeout=30),
    ):
        assert answer.status_code == 413 and "exceeds the limit" in answer.json()["error"]
    big = Path(server.log_path.parent / "big.json")
    big.write_bytes(TEN_MB)
    status, body = _curl("-X", "POST", "-H", "Content-Type: application/json", "--data-binary", f"@{big}", url)
    assert status == 413 and "exceeds the limit" in json.loads(body)["error"]
    infer = server.url + "/v2/models/votes/infer"
    try:
        urllib.request.urlopen(urllib.request.Request(infer, data=TEN_MB, headers={"Content-Type": "application/json"}))
        raise AssertionError("a 10 MB v2 body was accepted")
    except urllib.error.HTTPError as refused:
        assert refused.code == 413

    # wrong methods name what is allowed (RFC 9110)
    answer = httpx.get(url)
    assert answer.status_code == 405 and answer.headers["allow"] == "POST" and answer.json()["error"]
    answer = httpx.get(infer)
    assert answer.status_code == 405 and answer.headers["allow"] == "POST" and answer.json()["error"]
    answer = httpx.delete(server.url + "/v2/health/ready")
    assert answer.status_code == 405 and "GET" in answer.headers["allow"]

    # a malformed tensor is still refused, with the field named
    bad_tensor = {"inputs": [{"name": "text", "shape": [1], "datatype": "TEXT", "data": ["x"]}]}
    answer = httpx.post(infer, json=bad_tensor)
    assert answer.status_code == 422 and "TEXT" in answer.json()["error"]
    answer = httpx.post(infer, json={"model_name": "votes", "inputs": [{"name": "text", "shape": [1], "data": ["x"]}]})
    assert answer.status_code == 422 and "datatype" in answer.json()["error"]


def test_zero_config_verify_passes_on_a_healthy_server(served: tuple[User, Spawned]) -> None:
    person, server = served
    result = person.run("verify", server.url, "--skip", "latency.*", "--json")
    report = json.loads(result.stdout)
    statuses = {c["id"]: c["status"] for c in report["checks"]}
    assert result.returncode == 0 and report["ok"], result.stdout
    # the v2 model was found from the server itself: the v2 checks ran instead of being skipped
    for check in ("v2.live", "v2.ready", "v2.metadata", "v2.infer", "v2.bad_request"):
        assert statuses[check] == "passed", (check, statuses)


def test_a_tampered_cache_is_never_served(served: tuple[User, Spawned]) -> None:
    person, _ = served
    cached = next(Path(person.env["CONVEYOR_HOME"], "cache", "votes").glob("2-*"))
    for name in ("model.onnx", "tokenizer.json"):
        original = (cached / name).read_bytes()
        (cached / name).write_bytes(original[:-8] + b"tampered")
        server = person.serve("votes@production")
        try:
            log = server.log()
            assert f"was changed on disk ({name})" in log and "downloading it again" in log, log
            assert (cached / name).read_bytes() == original
            assert httpx.post(server.url + "/predict", json=[GOOD]).json() == {"positive": True}
        finally:
            server.stop()
    # a file slipped in beside the registered ones is refused the same way
    (cached / "model.yaml.orig").write_text("name: other\n")
    server = person.serve("votes@production")
    server.stop()
    assert "model.yaml.orig" in server.log() and not (cached / "model.yaml.orig").exists()


def test_a_server_that_goes_away_is_one_clear_line(served: tuple[User, Spawned]) -> None:
    person, _ = served
    dead = f"http://127.0.0.1:{free_port()}"
    result = person.run("verify", dead)
    assert result.returncode != 0 and "Traceback" not in result.stderr + result.stdout
    result = person.run("models", "list", env={"CONVEYOR_REGISTRY": dead})
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.strip().count("\n") == 0 and f"cannot reach the registry at {dead}" in result.stderr
    result = person.run("rollout", "start", "votes:1", "--router", dead)
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert f"the router at {dead} is unreachable" in result.stderr and result.stderr.strip().count("\n") == 0
