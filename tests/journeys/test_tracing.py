"""Journey: OpenTelemetry traces from the installed wheel, received by an OTLP endpoint on 127.0.0.1.

The user sets ``OTEL_EXPORTER_OTLP_ENDPOINT`` for ``conveyor serve`` and ``conveyor router`` and
calls with a W3C ``traceparent``, as an instrumented client does.  One trace then runs client →
router hop (SERVER, then a CLIENT span per backend tried) → server request → its reading, batch
wait, batch (tokenize, inference) and serialising, each span under the one before.  A router
without tracing passes the client's ``traceparent`` on untouched; v2 ``infer`` is traced too.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import free_port
from tests.journeys.conftest import Spawned, User, copy_model, wait_http
from tests.otlp_receiver import OtlpReceiver
from tests.waiting import wait_for

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CLIENT_SPAN = "00f067aa0ba902b7"


@pytest.fixture
def receiver() -> Iterator[OtlpReceiver]:
    found = OtlpReceiver()
    yield found
    found.close()


def _env(receiver: OtlpReceiver) -> dict[str, str]:
    return {"OTEL_EXPORTER_OTLP_ENDPOINT": receiver.url, "OTEL_BSP_SCHEDULE_DELAY": "100"}


def _router(user: User, backend: str, env: dict[str, str] | None) -> Spawned:
    port = free_port()
    router = user.spawn("router", "--port", str(port), "--stable", backend, "--stable-version", "1", env=env)
    router.url = f"http://127.0.0.1:{port}"
    wait_http(router, "/_conveyor/health")
    return router


def _spans(receiver: OtlpReceiver, trace: str, count: int) -> dict[str, dict[str, Any]]:
    """The trace's spans by name (the router's prefixed ``router ``), once ``count`` have arrived."""
    spans = wait_for(
        lambda: (found := receiver.trace(trace)) and len(found) >= count and found,
        timeout=30,
        what=f"{count} spans of trace {trace}",
    )
    return {("router " if span["service"] == "conveyor-router" else "") + span["name"]: span for span in spans}


def test_one_trace_runs_from_the_client_through_the_router_to_the_batch(
    user: User, vote_folder: Path, receiver: OtlpReceiver
) -> None:
    copy_model(vote_folder, user.workdir / "votes")
    server = user.serve("votes", env=_env(receiver))
    router = _router(user, server.url, _env(receiver))

    answer = httpx.post(
        router.url + "/predict",
        json=["good film", "bad"],
        headers={"traceparent": f"00-{TRACE}-{CLIENT_SPAN}-01"},
        timeout=10,
    )
    assert answer.json() == [{"positive": True}, {"positive": False}]

    spans = _spans(receiver, TRACE, 9)
    hop, forward = spans["router POST /predict"], spans["router POST"]
    request = spans["POST /predict"]
    assert (hop["service"], hop["parent_span_id"]) == ("conveyor-router", CLIENT_SPAN)
    assert (forward["kind"], forward["parent_span_id"]) == (3, hop["span_id"])  # SpanKind CLIENT
    assert forward["attributes"]["server.address"] == "127.0.0.1"
    assert forward["attributes"]["url.full"] == server.url + "/predict"
    assert forward["attributes"]["conveyor.backend"] == "stable"
    assert (request["service"], request["kind"]) == ("conveyor-serve", 2)  # SpanKind SERVER
    assert request["parent_span_id"] == forward["span_id"]
    assert request["attributes"]["conveyor.model"] == "votes"
    assert request["attributes"]["http.response.status_code"] == 200
    assert request["attributes"]["conveyor.request_id"] == answer.headers["x-request-id"]
    for name in ("read and parse", "batch wait", "batch", "serialise"):
        assert spans[name]["parent_span_id"] == request["span_id"], name
    assert spans["batch"]["attributes"]["conveyor.batch.size"] == 2
    for name in ("tokenize", "inference"):
        assert spans[name]["parent_span_id"] == spans["batch"]["span_id"], name
    # each span starts within its parent (and ends within it in the same process), in the order of the work
    by_id = {span["span_id"]: span for span in spans.values()}
    for span in spans.values():
        parent = by_id.get(span["parent_span_id"])
        if parent is not None:
            assert parent["start"] <= span["start"] <= parent["end"], span["name"]
            if parent["service"] == span["service"]:
                assert span["end"] <= parent["end"], span["name"]
    assert spans["read and parse"]["end"] <= spans["batch"]["start"] <= spans["serialise"]["start"]


def test_an_untraced_router_passes_the_traceparent_on_and_v2_infer_is_traced(
    user: User, vote_folder: Path, receiver: OtlpReceiver
) -> None:
    copy_model(vote_folder, user.workdir / "votes")
    server = user.serve("votes", env=_env(receiver))
    router = _router(user, server.url, None)

    body = {"inputs": [{"name": "text", "shape": [1], "datatype": "BYTES", "data": ["great"]}]}
    answer = httpx.post(
        router.url + "/v2/models/votes/infer",
        json=body,
        headers={"traceparent": f"00-{TRACE}-{CLIENT_SPAN}-01"},
        timeout=10,
    )
    assert answer.status_code == 200, answer.text

    spans = _spans(receiver, TRACE, 5)
    request = spans["POST /v2/models/{name}/infer"]
    assert request["attributes"]["url.path"] == "/v2/models/votes/infer"
    assert request["parent_span_id"] == CLIENT_SPAN  # the router added no span of its own
    assert {s["service"] for s in spans.values()} == {"conveyor-serve"}
    assert spans["batch"]["parent_span_id"] == request["span_id"]
    assert spans["inference"]["parent_span_id"] == spans["batch"]["span_id"]
