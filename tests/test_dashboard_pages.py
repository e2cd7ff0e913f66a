"""The dashboard's server side without a browser: auth and CSRF, errors, paging, charts, the DAG, signatures."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from conveyor.charts import line_chart
from conveyor.registry.config import open_local
from conveyor.registry.onnx_info import read_signature
from conveyor.rollout.status import Backend, RolloutStatus, StatusStore
from conveyor.ui.app import create_app
from conveyor.ui.pipeline_pages import columns
from tests import models


@pytest.fixture
def registry(conveyor_home: Path, tmp_path: Path):  # type: ignore[no-untyped-def]
    folder = models.model_dir(tmp_path / "bert", "bert", models.tiny_bert_model)
    store = open_local()
    store.register(folder, "bert", aliases=["production"], lineage=None)
    return store


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found, "no CSRF field on the page"
    return found.group(1)


def log_in(client: TestClient, token: str, next_page: str | None = None, prefix: str = ""):  # type: ignore[no-untyped-def]
    """Post the login form as a browser does: with the CSRF field of the form it was shown."""
    csrf = csrf_of(client.get(f"{prefix}/login").text)
    data = {"token": token, "csrf": csrf, **({"next": next_page} if next_page else {})}
    return client.post(f"{prefix}/login", data=data, follow_redirects=False)


def aborted_rollout(service: str = "svc", abort_reason: str | None = None) -> None:
    StatusStore(service).create(
        RolloutStatus(
            service=service,
            strategy="canary",
            ref="bert:2",
            router="http://127.0.0.1:9",
            steps=[20, 100],
            interval_s=5,
            phase="aborted",
            abort_reason=abort_reason,
            stable=Backend(ref="bert:1", version="bert:1"),
            canary=Backend(ref="bert:2", version="bert:2"),
        )
    )


def test_pages_render_and_bad_input_gets_a_clear_status(registry) -> None:  # type: ignore[no-untyped-def]
    client = TestClient(create_app(registry, tokens=registry.tokens))
    assert client.get("/models").status_code == 200
    assert 'data-model="bert"' in client.get("/models?q=BER").text
    assert 'data-model="bert"' not in client.get("/models?q=zzz").text
    assert client.get("/models/bert/versions/1").status_code == 200
    for path, status, words in [
        ("/models/nope", 404, "nope"),
        ("/models/bert/versions/0", 422, "invalid version"),
        ("/models/bert/versions/9223372036854775808", 422, "from 1 to 9223372036854775807"),
        ("/models/bert/versions/7", 404, "bert:7"),
        ("/models?page=abc", 422, "invalid page"),
        ("/models?page=3", 404, "there are 1"),
        ("/rollouts/none", 404, "no rollout"),
        ("/pipelines/runs/none", 404, "no run"),
        ("/no/such/page", 404, "not found"),
    ]:
        html = client.get(path)
        assert html.status_code == status and words in html.text.lower(), (path, html.status_code)
        as_json = client.get(path, headers={"accept": "application/json"})
        assert as_json.status_code == status and words in as_json.json()["error"].lower()
    headers = client.get("/models").headers
    assert headers["x-frame-options"] == "DENY" and "frame-ancestors 'none'" in headers["content-security-policy"]


def test_actions_need_the_csrf_token_and_a_write_login_when_the_registry_has_tokens(registry) -> None:  # type: ignore[no-untyped-def]
    aborted_rollout()
    read = registry.tokens.create("viewer", "read")
    write = registry.tokens.create("ops", "write")
    client = TestClient(create_app(registry, tokens=registry.tokens))
    page = client.get("/rollouts/svc")
    assert 'data-action="retry"' in page.text and "log in with a write token" in page.text
    csrf = csrf_of(page.text)
    assert client.post("/rollouts/svc/actions/retry", data={}).status_code == 403  # no CSRF token
    anonymous = client.post("/rollouts/svc/actions/retry", data={"csrf": csrf}, headers={"hx-request": "true"})
    assert anonymous.status_code == 401 and "log in" in anonymous.json()["error"]

    assert client.post("/login", data={"token": read, "next": "/rollouts/svc"}).status_code == 403  # no CSRF field
    assert log_in(client, "cvt_wrong", "/rollouts/svc").status_code == 401
    log_in(client, read, "/rollouts/svc")
    csrf = csrf_of(client.get("/rollouts/svc").text)  # a new session, a new CSRF token
    refused = client.post("/rollouts/svc/actions/retry", data={"csrf": csrf}, headers={"hx-request": "true"})
    assert refused.status_code == 403 and "read scope" in refused.json()["error"]

    landed = log_in(client, write, "//evil.example/")
    assert landed.status_code == 303 and landed.headers["location"] == "/models"  # never off-site
    page = client.get("/rollouts/svc").text
    assert "ops (write)" in page and write not in page and read not in page
    csrf = csrf_of(page)
    wrong = client.post("/rollouts/svc/actions/abort", data={"csrf": csrf}, headers={"hx-request": "true"})
    assert wrong.status_code == 409 and "aborted" in wrong.json()["error"]  # nothing to abort
    unknown = client.post("/rollouts/svc/actions/explode", data={"csrf": csrf}, headers={"hx-request": "true"})
    assert unknown.status_code == 422 and "unknown action" in unknown.json()["error"]


def test_require_login_closes_reading_too(registry) -> None:  # type: ignore[no-untyped-def]
    token = registry.tokens.create("viewer", "read")
    client = TestClient(create_app(registry, tokens=registry.tokens, require_login=True))
    assert client.get("/models").status_code == 401
    assert client.get("/login").status_code == 200
    log_in(client, token, "/models")
    assert client.get("/models").status_code == 200


def test_a_registry_without_tokens_lets_anyone_act_but_still_checks_csrf(registry) -> None:  # type: ignore[no-untyped-def]
    aborted_rollout()
    client = TestClient(create_app(registry, tokens=registry.tokens))
    page = client.get("/rollouts/svc").text
    assert "open registry" in page and "log in with a write token" not in page
    assert client.post("/rollouts/svc/actions/retry", data={"csrf": "forged"}).status_code == 403


def test_charts_break_lines_at_gaps_and_label_the_last_value() -> None:
    svg = line_chart("p99", {"stable": [(0, 1.0), (1, None), (2, 3.0), (3, 4.0)], "canary": []}, " ms")
    assert svg.count("<circle") == 1 and svg.count("<polyline") == 1  # 1.0 alone, then 3.0-4.0
    assert "stable 4 ms" in svg and "canary -" in svg


def test_dag_columns_follow_needs() -> None:
    from conveyor.pipeline.history import StepRecord

    needs = {"fetch": [], "lint": ["fetch"], "unit": ["fetch"], "report": ["lint", "unit"], "alone": []}
    steps = {name: StepRecord(needs=wanted) for name, wanted in needs.items()}
    assert columns(steps) == [["fetch", "alone"], ["lint", "unit"], ["report"]]


def test_signature_is_read_without_loading_the_weights(tmp_path: Path) -> None:
    folder = models.model_dir(tmp_path / "bert", "bert", models.tiny_bert_model)
    signature = read_signature(folder / "model.onnx")
    assert [i["name"] for i in signature["inputs"]] == ["input_ids", "attention_mask"]
    assert signature["inputs"][0]["type"] == "int64" and len(signature["outputs"]) == 1
    assert signature["opsets"]["ai.onnx"] >= 13


def test_mounted_in_the_registry_server_the_dashboard_needs_a_login_and_keeps_its_prefix(registry) -> None:  # type: ignore[no-untyped-def]
    from conveyor.registry.server import create_registry_app
    from conveyor.ui.app import with_dashboard

    token = registry.tokens.create("viewer", "read")
    client = TestClient(with_dashboard(create_registry_app(registry), registry, require_login=True))
    assert client.get("/api/v1/models").status_code == 401  # the API keeps its bearer tokens
    assert client.get("/ui/models").status_code == 401
    moved = log_in(client, token, prefix="/ui")
    assert moved.status_code == 303 and moved.headers["location"] == "/ui/models"
    landed = client.get(moved.headers["location"])
    assert landed.status_code == 200 and 'href="/ui/models/bert"' in landed.text
    assert "/ui/static/htmx-2.0.11.min.js" in landed.text and client.get("/ui/static/style.css").status_code == 200
    assert client.get("/api/v1/models", headers={"authorization": f"Bearer {token}"}).status_code == 200


def test_a_version_page_says_whether_and_by_which_key_it_is_signed(registry, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from conveyor.supply_chain.keys import generate, load_signing_key
    from conveyor.supply_chain.model_signature import sign_version

    client = TestClient(create_app(registry, tokens=registry.tokens))
    assert "no" in client.get("/models/bert/versions/1").text.split('id="signed">')[1][:4]
    private, _ = generate(tmp_path / "team")
    key = load_signing_key(private)
    sign_version(registry, "bert:1", key)
    signed = client.get("/models/bert/versions/1").text.split('id="signed">')[1]
    assert signed.startswith(f"by key <code>{key.key_id[:12]}</code>")


def test_pages_have_an_icon_a_text_protected_mark_and_a_heading_said_once(registry) -> None:  # type: ignore[no-untyped-def]
    registry.set_alias("bert", "production", 1, protect=True)
    client = TestClient(create_app(registry, tokens=registry.tokens))
    page = client.get("/models/bert").text
    icon = re.search(r'<link rel="icon"[^>]*href="([^"]+)"', page)
    assert icon, "no favicon link: browsers ask for /favicon.ico on every page"
    assert client.get(icon.group(1)).status_code == 200
    assert '<span class="protected"' in page and "\U0001f512" not in page  # no emoji a font may lack
    aborted_rollout("bert", "aborted by a user (from the dashboard by carol)")
    rollout = client.get("/rollouts/bert").text
    headline = re.search(r'<h1 id="headline">(.*?)<span', rollout, re.S)
    assert headline and headline.group(1).strip() == "bert:2"
    reason = re.search(r'<p class="flash bad" id="abort-reason">(.*?)</p>', rollout, re.S)
    assert reason and reason.group(1) == "aborted by a user (from the dashboard by carol)"


def test_a_version_page_judges_its_image_tag_and_links_the_rollouts_that_used_it(registry) -> None:  # type: ignore[no-untyped-def]
    registry.register(registry.cached("bert:1")[1], "bert")  # bert:2, the canary of the rollout below
    registry.set_tags("bert", 2, {"image": "localhost/no-such-image:2"}, [])
    aborted_rollout("bert", "aborted by a user (test)")
    client = TestClient(create_app(registry, tokens=registry.tokens))
    page = client.get("/models/bert/versions/2").text
    assert 'data-state="unknown"' in page and "not on this machine" in page
    assert "conveyor verify --supply-chain localhost/no-such-image:2" in page
    rollouts = re.search(r'<ul id="rollouts">(.*?)</ul>', page, re.S)
    assert rollouts and 'href="/rollouts/bert"' in rollouts.group(1) and "as canary" in rollouts.group(1)
    assert "no rollout has used this version" not in page
    stable = re.search(r'<ul id="rollouts">(.*?)</ul>', client.get("/models/bert/versions/1").text, re.S)
    assert stable and "as stable" in stable.group(1)  # bert:1 served beside it as the stable
