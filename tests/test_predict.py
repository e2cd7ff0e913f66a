"""The classic /predict contract and every bad-input case, against a real server process."""

from __future__ import annotations

import json

import httpx
import numpy as np
import pytest

from tests.conftest import Server
from tests.models import expected_positive

JSON_HEADERS = {"Content-Type": "application/json"}


def post(server: Server, body: bytes | str, headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.post(f"{server.url}/predict", content=body, headers=headers or JSON_HEADERS, timeout=10)


def test_one_string_answers_exactly_the_classic_object_with_a_json_boolean(served_vote: Server) -> None:
    response = post(served_vote, '["a good day"]')
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    assert response.json() == {"positive": True}
    assert type(response.json()["positive"]) is bool
    assert post(served_vote, '["a bad day"]').json() == {"positive": False}


@pytest.mark.parametrize(
    "texts",
    [
        ["good", "bad", "good good bad", "nothing here", "awful great great"],
        ["GOOD news", "Bad news"],
    ],
)
def test_a_list_of_n_strings_answers_a_list_of_n_objects_in_order(served_vote: Server, texts: list[str]) -> None:
    response = post(served_vote, json.dumps(texts))
    assert response.status_code == 200
    assert response.json() == [{"positive": expected_positive(t)} for t in texts]


def test_charset_in_content_type_is_accepted(served_vote: Server) -> None:
    response = post(served_vote, '["good"]', {"Content-Type": "application/json; charset=utf-8"})
    assert response.json() == {"positive": True}


BAD_INPUTS = [
    ("malformed json", b'["good"', JSON_HEADERS, 400, "not valid JSON"),
    ("empty body", b"", JSON_HEADERS, 400, "empty"),
    ("wrong content type", b'["good"]', {"Content-Type": "text/plain"}, 415, "Content-Type"),
    ("form content type", b'["good"]', {"Content-Type": "application/x-www-form-urlencoded"}, 415, "Content-Type"),
    ("empty list", b"[]", JSON_HEADERS, 422, "non-empty"),
    ("non-string item", b'["good", 3]', JSON_HEADERS, 422, "item 1 must be a string, got int"),
    ("null item", b'["good", null]', JSON_HEADERS, 422, "item 1 must be a string, got null"),
    ("null body", b"null", JSON_HEADERS, 422, "got null"),
    ("nested object", b'[{"text": "good"}]', JSON_HEADERS, 422, "got object"),
    ("object body", b'{"text": "good"}', JSON_HEADERS, 422, "got object"),
    ("nested list", b'[["good"]]', JSON_HEADERS, 422, "got array"),
    ("bare string", b'"good"', JSON_HEADERS, 422, "got string"),
    ("too many items", json.dumps(["good"] * 9).encode(), JSON_HEADERS, 413, "too many items: 9 > the limit of 8"),
    ("body over the limit", json.dumps(["good " * 1000]).encode(), JSON_HEADERS, 413, "exceeds the limit"),
    ("invalid utf-8", b'["\xff\xfe"]', JSON_HEADERS, 400, "not valid JSON"),
]


@pytest.mark.parametrize(("case", "body", "headers", "status", "message"), BAD_INPUTS, ids=[c[0] for c in BAD_INPUTS])
def test_bad_input_gets_a_4xx_json_error_naming_the_problem(
    served_vote: Server, case: str, body: bytes, headers: dict[str, str], status: int, message: str
) -> None:
    response = post(served_vote, body, headers)
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    assert message in response.json()["error"]
    # and the server keeps serving
    assert post(served_vote, '["good"]').json() == {"positive": True}


def test_body_over_the_limit_without_content_length_is_refused(served_vote: Server) -> None:
    def chunks():  # streamed: no Content-Length, chunked transfer encoding
        yield b'["'
        for _ in range(100):
            yield b"good " * 20
        yield b'"]'

    response = httpx.post(f"{served_vote.url}/predict", content=chunks(), headers=JSON_HEADERS, timeout=10)
    assert response.status_code == 413
    assert "exceeds the limit" in response.json()["error"]


def test_over_long_text_is_truncated_to_max_length(served_vote: Server) -> None:
    # max_length is 16 tokens: the 20 trailing negative words are cut off.
    text = "good " * 16 + "bad " * 20
    assert len(text) < 4096
    response = post(served_vote, json.dumps([text]))
    assert response.status_code == 200
    assert response.json() == {"positive": True}


def test_unknown_route_and_method_answer_json(served_vote: Server) -> None:
    missing = httpx.get(f"{served_vote.url}/nope", timeout=5)
    assert missing.status_code == 404
    assert "no route /nope" in missing.json()["error"]
    wrong_method = httpx.get(f"{served_vote.url}/predict", timeout=5)
    assert wrong_method.status_code == 405
    assert "GET" in wrong_method.json()["error"]
    assert wrong_method.headers["allow"] == "POST"
    assert httpx.get(f"{served_vote.url}/v2/health/live", timeout=5).status_code == 200  # still serving


def test_three_label_model_answers_the_label(tmp_path, model_root) -> None:
    from tests.conftest import start_server
    from tests.models import model_dir, word_vote_model

    path = model_dir(
        model_root / "three",
        "three",
        lambda p: word_vote_model(p, labels=3),
        labels=["ham", "eggs", "spam"],
    )
    server = start_server(path, tmp_path=tmp_path)
    try:
        texts = ["spam spam", "good", "nothing"]
        answer = post(server, json.dumps(texts)).json()
        assert [a["label"] for a in answer] == ["spam", "eggs", "ham"]
        assert [set(a) for a in answer] == [{"label", "score"}] * 3
        # the winning label's probability: 'spam spam' votes 4 for spam against 0.5 for ham and 0 for eggs
        assert answer[0]["score"] == pytest.approx(np.exp(4) / (np.exp(4) + np.exp(0.5) + 1), abs=1e-5)
        assert all(1 / 3 <= a["score"] <= 1 for a in answer)
        single = post(server, '["spam"]').json()
        assert single["label"] == "spam" and 0.5 < single["score"] <= 1

        # verify with no contract judges the model by its own labels, not the sentiment model's schema
        from tests.test_verify import results_by_id, verify

        _, report = verify(server.url)
        checks = results_by_id(report)
        served = [c for c in report["checks"] if c["layer"] != "static"]  # not the repository's lint
        assert [c for c in served if c["status"] not in ("passed", "skipped")] == [], served
        assert checks["response.schema"]["status"] == "passed"

        # ... and so does a canary's contract metric with no contract file (what `rollout start` runs)
        from conveyor.rollout.analysis.metric import AnalysisWindow, Verdict
        from conveyor.rollout.analysis.metrics.contract import ContractMetric
        from conveyor.rollout.analysis.thresholds import Thresholds
        from conveyor.verify.contract import Contract

        window = AnalysisWindow(
            stage="canary", before={}, after={}, stable=("stable", "1"), canary=("canary", "2"),
            canary_url=server.url, limits=Thresholds(), contract=Contract(), model_name="three",
        )  # fmt: skip
        verdict = Verdict()
        ContractMetric().measure(window, verdict)
        assert verdict.outcome == "successful", verdict.reasons
        assert verdict.measurements["contract"]["failed"] == []
    finally:
        server.stop()


def test_custom_binary_labels_answer_with_the_positive_label(tmp_path, model_root) -> None:
    from tests.conftest import start_server
    from tests.models import model_dir, word_vote_model

    path = model_dir(model_root / "fine", "fine", word_vote_model, labels=["not_fine", "fine"], positive_label="fine")
    server = start_server(path, tmp_path=tmp_path)
    try:
        assert post(server, '["great"]').json() == {"fine": True}
        assert post(server, '["awful"]').json() == {"fine": False}
    finally:
        server.stop()
