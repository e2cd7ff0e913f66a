"""Readiness, graceful shutdown, load failures, metrics, OpenAPI and the CLI."""

from __future__ import annotations

import asyncio
import gc
import re
import signal
import subprocess
import sys
import threading
import time

import httpx
import pytest
from starlette.testclient import TestClient

from conveyor.serving.app import create_app
from conveyor.serving.dataplane import DataPlane, ServingOptions
from conveyor.serving.heap import freeze_loaded_heap
from conveyor.serving.spec import resolve_model
from tests.conftest import REPO, Server, start_server, wait_until_ready
from tests.waiting import wait_for


def test_not_ready_until_the_model_is_loaded_and_warmed_up(vote_model) -> None:
    plane = DataPlane(resolve_model(vote_model), ServingOptions())
    client = TestClient(create_app(plane))  # no lifespan: the model has not been loaded
    assert client.get("/v2/health/live").json() == {"live": True}
    ready = client.get("/v2/health/ready")
    assert ready.status_code == 503 and ready.json()["ready"] is False
    assert client.get("/v2/models/votes/ready").status_code == 503
    predict = client.post("/predict", json=["good"])
    assert predict.status_code == 503
    assert "not ready" in predict.json()["error"]

    with TestClient(create_app(DataPlane(resolve_model(vote_model), ServingOptions()))) as started:
        wait_for(lambda: started.get("/v2/health/ready").status_code == 200, timeout=10, what="readiness")
        assert started.app.state.plane.task.loaded  # loaded, warm-up ran before ready
        assert started.post("/predict", json=["good"]).json() == {"positive": True}


@pytest.mark.parametrize("load_before_serving", [False, True])
def test_on_ready_runs_once_the_model_is_loaded_and_warm(vote_model, load_before_serving: bool) -> None:
    plane = DataPlane(resolve_model(vote_model), ServingOptions())
    seen: list[bool] = []
    app = create_app(plane, load_before_serving=load_before_serving, on_ready=lambda: seen.append(plane.ready))
    with TestClient(app) as client:
        wait_for(lambda: bool(seen), timeout=10, what="on_ready")
        assert client.post("/predict", json=["good"]).json() == {"positive": True}
    assert seen == [True]  # once, and only when the model answers


def test_freezing_the_loaded_heap_exempts_what_is_alive_from_collections() -> None:
    assert gc.get_freeze_count() == 0
    try:
        freeze_loaded_heap()
        assert gc.get_freeze_count() > 1000  # the interpreter's and the test's modules, at least
        assert gc.get_count()[0] < 100  # the collection ran first: nothing left for the young generation
    finally:
        gc.unfreeze()  # the test process's heap is not a server's


def test_sigterm_finishes_in_flight_requests_then_exits(vote_model, tmp_path) -> None:
    # A 1.5 s batch wait keeps the request in flight when SIGTERM arrives.
    server = start_server(vote_model, "--max-batch-wait-ms", "1500", tmp_path=tmp_path)
    result: dict[str, httpx.Response] = {}

    def call() -> None:
        result["response"] = httpx.post(f"{server.url}/predict", json=["good"], timeout=20)

    thread = threading.Thread(target=call)
    thread.start()
    time.sleep(0.5)
    server.process.send_signal(signal.SIGTERM)
    thread.join(20)
    assert result["response"].status_code == 200
    assert result["response"].json() == {"positive": True}
    # the server ends by the signal once shut down, so the exit status says "ended by SIGTERM"
    assert server.process.wait(20) == -signal.SIGTERM
    assert "Finished server process" in server.log()
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{server.url}/v2/health/live", timeout=2)


def test_a_model_that_cannot_load_exits_non_zero_with_the_reason(tmp_path) -> None:
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"this is not an onnx file")
    server = start_server(broken, tmp_path=tmp_path, wait_ready=False)
    assert server.process.wait(30) == 1
    assert "cannot load" in server.log()


def test_missing_model_path_fails_fast_with_exit_code_2(tmp_path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "conveyor.cli.main", "serve", str(tmp_path / "nope")],
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    assert result.returncode == 2
    assert "no such model directory" in result.stderr


def test_spec_errors_name_the_field(tmp_path, vote_model) -> None:
    model_dir = tmp_path / "m"
    model_dir.mkdir()
    (model_dir / "model.onnx").write_bytes((vote_model / "model.onnx").read_bytes())
    (model_dir / "tokenizer.json").write_bytes((vote_model / "tokenizer.json").read_bytes())
    (model_dir / "model.yaml").write_text("name: m\nlabels: [a, a]\n")
    result = subprocess.run(
        [sys.executable, "-m", "conveyor.cli.main", "serve", str(model_dir)], capture_output=True, text=True, cwd=REPO
    )
    assert result.returncode == 2
    assert "labels must be unique" in result.stderr


def sample(text: str, name: str, **labels: str) -> float:
    for line in text.splitlines():
        if not line.startswith(name + "{"):
            continue
        found = dict(re.findall(r'(\w+)="([^"]*)"', line))
        if all(found.get(k) == v for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"no sample {name} {labels}")


def test_metrics_count_requests_by_route_and_status_with_model_labels(served_vote: Server) -> None:
    before = httpx.get(f"{served_vote.url}/metrics").text
    try:
        ok_before = sample(before, "conveyor_requests_total", route="/predict", status="200")
    except AssertionError:
        ok_before = 0.0
    for _ in range(3):
        httpx.post(f"{served_vote.url}/predict", json=["good"])
    httpx.post(f"{served_vote.url}/predict", json=[])
    httpx.get(f"{served_vote.url}/v2/models/votes/versions/1")
    response = httpx.get(f"{served_vote.url}/metrics")
    assert response.headers["content-type"].startswith("text/plain")
    text = response.text
    labels = {"model": "votes", "version": "1"}
    assert sample(text, "conveyor_requests_total", route="/predict", status="200", **labels) == ok_before + 3
    assert sample(text, "conveyor_requests_total", route="/predict", status="422", **labels) >= 1
    assert sample(text, "conveyor_requests_total", route="/v2/models/{name}/versions/{version}", status="200") >= 1
    assert sample(text, "conveyor_request_duration_seconds_count", route="/predict", method="POST") >= 4
    for histogram in ("conveyor_queue_wait_seconds", "conveyor_batch_size", "conveyor_inference_duration_seconds"):
        assert sample(text, f"{histogram}_count", **labels) >= 3
    assert sample(text, "conveyor_predictions_total", label="positive", **labels) >= 3


def test_metrics_are_correct_with_several_workers(vote_model, tmp_path) -> None:
    server = start_server(vote_model, "--workers", "2", tmp_path=tmp_path)
    try:
        wait_until_ready(server)
        pids = set()

        async def fire() -> None:
            async with httpx.AsyncClient(base_url=server.url) as client:
                # fresh connections spread over the workers
                for _ in range(4):
                    await asyncio.gather(*(client.post("/predict", json=["good"]) for _ in range(5)))

        asyncio.run(fire())
        for _ in range(6):  # whichever worker answers the scrape, the sum is the same
            with httpx.Client() as client:
                text = client.get(f"{server.url}/metrics").text
            assert sample(text, "conveyor_requests_total", route="/predict", status="200") == 20
            pids.add(text)
        assert sample(text, "conveyor_batch_size_sum", model="votes") == 20
    finally:
        assert server.stop() == -signal.SIGTERM


def test_openapi_documents_every_route(served_vote: Server) -> None:
    doc = httpx.get(f"{served_vote.url}/openapi.json").json()
    assert doc["openapi"].startswith("3.")
    expected = {
        "/predict",
        "/v2",
        "/v2/health/live",
        "/v2/health/ready",
        "/metrics",
        "/openapi.json",
        "/v2/models/{name}",
        "/v2/models/{name}/ready",
        "/v2/models/{name}/infer",
        "/v2/models/{name}/versions/{version}",
        "/v2/models/{name}/versions/{version}/ready",
        "/v2/models/{name}/versions/{version}/infer",
        "/v2/repository/index",
    }
    assert set(doc["paths"]) == expected
    predict = doc["paths"]["/predict"]["post"]
    assert {"200", "400", "413", "415", "422", "503"} <= set(predict["responses"])
    assert "InferenceRequest" in doc["components"]["schemas"]


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--help"], ["[OPTIONS] COMMAND", "serve", "models", "rollout", "--version"]),
        (["serve", "--help"], ["serve [OPTIONS]", "--port", "CONVEYOR_SERVE_PORT; default: 5000]"]),
        (["version"], [__import__("conveyor").__version__]),
    ],
)
def test_cli_help_and_version(args: list[str], expected: list[str]) -> None:
    result = subprocess.run([sys.executable, "-m", "conveyor.cli.main", *args], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    shown = " ".join(result.stdout.split())  # the help wraps long lines where the terminal ends
    for text in expected:
        assert text in shown, (text, result.stdout)


def test_a_client_that_leaves_before_its_answer_costs_no_inference(vote_model, tmp_path) -> None:
    import socket

    # A lone request waits up to 1.5 s for a batch to fill: time for its client to give up.
    server = start_server(vote_model, "--max-batch-wait-ms", "1500", tmp_path=tmp_path)
    try:
        labels = {"model": "votes", "version": "1"}
        assert "conveyor_batch_size_count{" not in httpx.get(f"{server.url}/metrics").text  # no batch yet
        port = int(server.url.rsplit(":", 1)[1])
        body = b'["good"]'
        with socket.create_connection(("127.0.0.1", port)) as client:
            client.sendall(
                b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                + f"Content-Length: {len(body)}\r\n\r\n".encode()
                + body
            )
            time.sleep(0.3)  # queued, not computed yet
        time.sleep(2.0)  # past the batch wait: a batch would have run by now
        text = httpx.get(f"{server.url}/metrics").text
        assert "conveyor_batch_size_count{" not in text, "the abandoned request was computed"
        assert sample(text, "conveyor_requests_total", route="/predict", status="499", **labels) == 1
        answer = httpx.post(f"{server.url}/predict", json=["good"], timeout=10)  # still serving
        assert answer.json() == {"positive": True}
        assert sample(httpx.get(f"{server.url}/metrics").text, "conveyor_batch_size_count", **labels) == 1
    finally:
        server.stop()
