"""The payload log's record: one versioned format that servers and routers write and monitoring reads,
including every file written before the format had a version."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from conveyor.monitoring.logs import LogReader
from conveyor.monitoring.quality import feedback_of, labelled_rows, window_quality
from conveyor.router.payload_log import RouterPayloads
from conveyor.router.requests import RecentRequests, Served
from conveyor.serving.payload_record import (
    SCHEMA_VERSION,
    FeedbackRecord,
    RequestRecord,
    read_record,
)
from conveyor.serving.payloads import PayloadLog, PayloadLogConfig

# Lines written by the code before the schema field (commit 1987a61's serving/payloads.py and
# router/payload_log.py, and the first payload log of 772ddf2, which wrote no "kind"), copied as written.
SERVER_TEXT = """\
{"kind":"request","time":"2026-12-07T12:43:33.433+00:00","request_id":"req-text","model":"sentiment","version":"1","route":"/predict","latency_ms":4.2,"inputs":["great service","awful"],"outputs":[{"positive":true},{"positive":false}],"probabilities":[[0.047426,0.952574],[0.880797,0.119203]]}
{"kind":"feedback","time":"2026-12-07T12:43:33.433+00:00","request_id":"req-text","labels":["positive","negative"]}
"""  # noqa: E501
SERVER_TABULAR = """\
{"kind":"request","time":"2026-12-07T12:43:33.625+00:00","request_id":"req-risk","model":"risk","version":"1","route":"/v2/models/risk/infer","latency_ms":1.1,"inputs":[{"age":61,"income":2100.0,"region":"sha256:dc365e79d41cfae1c3c0d969319ae621"}],"outputs":[{"label":"high","probabilities":{"low":0.3,"high":0.7},"high":true}],"probabilities":[[0.3,0.7]]}
{"kind":"feedback","time":"2026-12-07T12:43:33.625+00:00","request_id":"req-risk","labels":["low"]}
"""
SERVER_REGRESSION = """\
{"kind":"request","time":"2026-12-07T12:43:33.626+00:00","request_id":"req-area","model":"area","version":"3","route":"/predict","latency_ms":0.9,"inputs":[{"rooms":3,"floor":2}],"outputs":[{"value":812.5}]}
{"kind":"feedback","time":"2026-12-07T12:43:33.626+00:00","request_id":"req-area","values":[790.0]}
"""
ROUTER = """\
{"kind":"request","time":"2026-12-07T12:43:33.629+00:00","request_id":"req-router","model":"risk","version":"2","backend":"canary","route":"/predict","latency_ms":3.1,"inputs":[{"age":30,"income":4000.0,"region":"south"}],"outputs":[{"label":"low","probabilities":{"low":0.9,"high":0.1},"high":false}]}
{"kind":"feedback","time":"2026-12-07T12:43:33.629+00:00","request_id":"req-router","labels":["low"]}
"""
FIRST = """\
{"time":"2026-12-07T12:43:39.773+00:00","request_id":"req-first","model":"sentiment","version":"1","route":"/predict","latency_ms":4.2,"inputs":["fine"],"outputs":[{"positive":true}],"probabilities":[[0.047426,0.952574]]}
{"time":"2026-12-07T12:43:39.773+00:00","request_id":"req-long","model":"sentiment","version":"1","route":"/predict","latency_ms":4.2,"inputs":null,"outputs":[{"positive":false}],"probabilities":[[0.952574,0.047426]],"omitted":"inputs over 256 bytes"}
"""  # noqa: E501


def _log(folder: Path, model: str, version: str, text: str) -> None:
    (folder / model / version).mkdir(parents=True, exist_ok=True)
    (folder / model / version / "payloads-20261207T124333-1-0001.jsonl").write_text(text)


def _read(folder: Path, model: str, version: str) -> tuple[list[RequestRecord], list[FeedbackRecord], LogReader]:
    reader = LogReader(str(folder), model, version)
    records = list(reader.records())
    requests = [r for r in records if isinstance(r, RequestRecord)]
    return requests, [r for r in records if isinstance(r, FeedbackRecord)], reader


def test_every_line_written_before_the_version_field_reads_as_a_typed_record_of_version_1() -> None:
    text, feedback = map(read_record, SERVER_TEXT.splitlines())
    assert isinstance(text, RequestRecord) and isinstance(feedback, FeedbackRecord)
    assert (text.schema, text.request_id, text.inputs, text.backend) == (
        1,
        "req-text",
        ["great service", "awful"],
        None,
    )
    assert text.probabilities == [[0.047426, 0.952574], [0.880797, 0.119203]]
    assert (feedback.schema, feedback.request_id, feedback.truth) == (1, "req-text", ["positive", "negative"])

    routed = read_record(ROUTER.splitlines()[0])
    assert isinstance(routed, RequestRecord)
    assert (routed.backend, routed.probabilities, routed.outputs[0]["label"]) == ("canary", None, "low")

    value = read_record(SERVER_REGRESSION.splitlines()[1])
    assert isinstance(value, FeedbackRecord) and (value.labels, value.truth) == (None, [790.0])

    first, long = map(read_record, FIRST.splitlines())  # no "kind": every line was a request
    assert isinstance(first, RequestRecord) and isinstance(long, RequestRecord)
    assert (first.kind, first.schema, first.inputs) == ("request", 1, ["fine"])
    assert (long.inputs, long.omitted) == (None, "inputs over 256 bytes")


def test_monitoring_reads_old_server_and_router_logs_into_live_quality_and_labelled_rows(tmp_path: Path) -> None:
    _log(tmp_path, "sentiment", "1", SERVER_TEXT + FIRST)
    requests, feedback, reader = _read(tmp_path, "sentiment", "1")
    assert (len(requests), len(feedback), reader.unreadable) == (3, 1, 0)
    truth = feedback_of(feedback)
    assert truth == {"req-text": ["positive", "negative"]}
    quality = window_quality(requests, truth, ["negative", "positive"], regression=False)
    assert quality is not None and (quality["labelled"], quality["accuracy"]) == (2, 1.0)
    rows = labelled_rows(requests, truth, text=True, target="label")
    assert [(r["text"], r["label"]) for r in rows] == [("great service", "positive"), ("awful", "negative")]

    _log(tmp_path, "risk", "2", ROUTER)  # a router's record: no probabilities, the answer's label counts
    requests, feedback, _ = _read(tmp_path, "risk", "2")
    quality = window_quality(requests, feedback_of(feedback), ["low", "high"], regression=False, boolean="high")
    assert quality is not None and (quality["labelled"], quality["accuracy"]) == (1, 1.0)

    _log(tmp_path, "area", "3", SERVER_REGRESSION)
    requests, feedback, _ = _read(tmp_path, "area", "3")
    quality = window_quality(requests, feedback_of(feedback), [], regression=True)
    assert quality is not None and (quality["labelled"], quality["mae"], quality["rmse"]) == (1, 22.5, 22.5)


def test_a_line_that_is_not_a_record_is_counted_and_the_rest_still_read(tmp_path: Path) -> None:
    torn = SERVER_TABULAR.splitlines()[0][:80]
    foreign = [torn, "[1, 2]", '{"kind": "request", "model": "risk"}', '{"kind": "audit", "time": "x"}']
    _log(tmp_path, "risk", "1", "\n".join([*foreign, *SERVER_TABULAR.splitlines()]) + "\n")
    requests, feedback, reader = _read(tmp_path, "risk", "1")
    assert (len(requests), len(feedback), reader.unreadable) == (1, 1, len(foreign))


def test_a_newer_versions_line_reads_as_far_as_this_version_knows_it() -> None:
    line = json.loads(SERVER_TABULAR.splitlines()[0])
    record = read_record(json.dumps({**line, "schema": SCHEMA_VERSION + 1, "tenant": "acme"}))
    assert isinstance(record, RequestRecord) and record.schema == SCHEMA_VERSION + 1
    assert record.request_id == "req-risk"


def test_a_server_and_a_router_write_the_same_record_of_the_current_version(tmp_path: Path) -> None:
    served = tmp_path / "served"
    server = PayloadLog(PayloadLogConfig(str(served), sample=1.0), "risk", "1", logits=False, classifier=True)
    answer = [{"label": "high", "probabilities": {"low": 0.3, "high": 0.7}, "high": True}]
    server.offer("req-1", "/predict", 0.0011, [{"age": 61, "region": "north"}], np.array([[0.3, 0.7]]), answer)
    server.offer_feedback([{"request_id": "req-1", "labels": ["low"]}])
    server.close()
    routed = tmp_path / "routed"
    router = RouterPayloads(PayloadLogConfig(str(routed), sample=1.0), RecentRequests("risk"))
    body, answered = b'[{"age": 61, "region": "north"}]', json.dumps(answer).encode()
    router.answered(Served("canary", "risk", "1"), "req-2", "/predict", 0.0031, body, answered)
    router.close()

    lines = {name: (folder / "risk" / "1").glob("*.jsonl") for name, folder in (("server", served), ("router", routed))}
    written = {
        name: [json.loads(line) for p in paths for line in p.read_text().splitlines()] for name, paths in lines.items()
    }
    server_request, server_feedback = written["server"]
    (router_request,) = written["router"]
    assert list(server_request) == list(router_request)  # the same fields, in the same order
    assert server_request["schema"] == router_request["schema"] == SCHEMA_VERSION
    assert (server_request["backend"], server_request["probabilities"]) == (None, [[0.3, 0.7]])
    assert (router_request["backend"], router_request["probabilities"]) == ("canary", None)
    assert (
        server_request["inputs"] == router_request["inputs"] and server_request["outputs"] == router_request["outputs"]
    )
    # feedback keeps only the answers it has, as before: an older reader's labels-or-values still finds them
    assert server_feedback == {
        "schema": SCHEMA_VERSION,
        "kind": "feedback",
        "time": server_feedback["time"],
        "request_id": "req-1",
        "labels": ["low"],
    }
    for record in (server_request, router_request, server_feedback):
        assert read_record(json.dumps(record)).schema == SCHEMA_VERSION


def test_a_record_over_the_cap_loses_its_inputs_and_says_why(tmp_path: Path) -> None:
    cap = 300
    log = PayloadLog(
        PayloadLogConfig(str(tmp_path), sample=1.0, max_record_bytes=cap), "m", "1", logits=False, classifier=False
    )
    log.offer("req-big", "/predict", 0.001, ["x" * 400], np.array([[1.0]]), [{"value": 1.0}])
    log.close()
    (record,) = _read(tmp_path, "m", "1")[0]
    assert (record.inputs, record.omitted, record.outputs) == (None, f"inputs over {cap} bytes", [{"value": 1.0}])
