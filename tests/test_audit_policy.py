"""Policies a token cannot lift alone, the audit log that records who tried, and dashboard sessions that end.

In process: the registry server's app through Starlette's test client (the client's address is
``testclient``), the CLI through Typer's runner, the dashboard through its app.
"""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from starlette.testclient import TestClient
from typer.testing import CliRunner

from conveyor.cli.main import app as cli
from conveyor.registry.audit import Actor
from conveyor.registry.config import open_local
from conveyor.registry.local import LocalRegistry
from conveyor.registry.server import create_registry_app
from conveyor.registry.sql import SqlStore
from conveyor.rollout.status import StatusStore
from conveyor.ui.app import create_app
from conveyor.ui.settings import DashboardSessionSettings
from tests.test_dashboard_pages import aborted_rollout, csrf_of, log_in

POLICY = "require-signed"


@pytest.fixture
def registry(conveyor_home: Path, tmp_path: Path) -> LocalRegistry:
    folder = tmp_path / "txt"
    folder.mkdir()
    (folder / "weights.bin").write_bytes(b"weights")
    store = open_local()
    store.register(folder, "txt", aliases=["production"])
    store.set_tags("txt", None, {POLICY: "true"}, [])
    return store


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_a_write_token_cannot_relax_the_signing_policy_an_admin_can_and_both_are_audited(
    registry: LocalRegistry,
) -> None:
    write = registry.tokens.create("ci", "write")
    admin = registry.tokens.create("security", "admin")
    client = TestClient(create_registry_app(registry))
    tags = "/api/v1/models/txt/tags"

    for change in ({"unset": [POLICY]}, {"set": {POLICY: "false"}}):
        refused = client.patch(tags, json=change, headers=_bearer(write))
        assert refused.status_code == 403, refused.text
        assert "admin scope" in refused.json()["error"] and "'ci' has write scope" in refused.json()["error"]
    assert registry.get_model("txt").tags[POLICY] == "true"  # nothing changed

    # a write token keeps everything else: other tags, a version's tags, an alias, and tightening
    assert client.patch(tags, json={"set": {"team": "nlp"}}, headers=_bearer(write)).status_code == 200
    assert client.patch(
        tags.replace("tags", "versions/1/tags"), json={"unset": ["x"]}, headers=_bearer(write)
    ).is_success
    assert client.put("/api/v1/models/txt/aliases/staging", json={"version": 1}, headers=_bearer(write)).is_success

    relaxed = client.patch(tags, json={"unset": [POLICY]}, headers=_bearer(admin))
    assert relaxed.status_code == 200 and POLICY not in relaxed.json()["tags"]
    tightened = client.patch(tags, json={"set": {POLICY: "yes"}}, headers=_bearer(write))
    assert tightened.status_code == 200 and tightened.json()["tags"][POLICY] == "yes"

    entries = registry.audit.entries(model="txt")
    policy = [(e.who, e.where, e.action, e.before, e.after) for e in entries if e.action.startswith("policy.")]
    assert policy == [
        (
            "local:" + entries[0].who.removeprefix("local:"),
            socket.gethostname(),
            "policy.tightened",
            {},
            {POLICY: "true"},
        ),
        ("ci", "testclient", "policy.relax-refused", {POLICY: "true"}, {}),
        ("ci", "testclient", "policy.relax-refused", {POLICY: "true"}, {POLICY: "false"}),
        ("security", "testclient", "policy.relaxed", {POLICY: "true"}, {}),
        ("ci", "testclient", "policy.tightened", {}, {POLICY: "yes"}),
    ]
    moved = [e for e in entries if e.action == "alias.moved"]
    assert [(e.who, e.target, e.before, e.after) for e in moved] == [
        (entries[0].who, "txt@production", None, {"version": 1, "protected": False}),
        ("ci", "txt@staging", None, {"version": 1, "protected": False}),
    ]
    assert all(e.at.tzinfo is not None and abs(time.time() - e.at.timestamp()) < 60 for e in entries)


def test_without_tokens_the_server_may_change_anything_but_relax_a_policy(registry: LocalRegistry) -> None:
    client = TestClient(create_registry_app(registry, require_auth=False))
    refused = client.patch("/api/v1/models/txt/tags", json={"unset": [POLICY]})
    assert refused.status_code == 403 and "'anonymous' has write scope" in refused.json()["error"]
    assert client.delete("/api/v1/models/txt/aliases/production").status_code == 200
    last = registry.audit.entries()[-1]
    assert (last.who, last.where, last.action, last.before) == (
        "anonymous",
        "testclient",
        "alias.deleted",
        {"version": 1, "protected": False},
    )


def test_the_local_cli_is_the_owner_it_may_relax_and_is_audited(registry: LocalRegistry) -> None:
    runner = CliRunner()
    relaxed = runner.invoke(cli, ["models", "tag", "txt", "--unset", POLICY])
    assert relaxed.exit_code == 0, relaxed.output
    assert POLICY not in registry.get_model("txt").tags
    made = runner.invoke(cli, ["registry", "token", "create", "ops", "--scope", "admin", "--json"])
    assert made.exit_code == 0 and json.loads(made.output)["scope"] == "admin"
    assert runner.invoke(cli, ["registry", "token", "revoke", "ops"]).exit_code == 0
    assert runner.invoke(cli, ["models", "delete", "txt:1"]).exit_code != 0  # @production points at it

    shown = runner.invoke(cli, ["registry", "audit", "--json"])
    assert shown.exit_code == 0, shown.output
    entries = json.loads(shown.output)
    actions = [(e["action"], e["target"]) for e in entries]
    assert actions == [
        ("version.created", "txt:1"),
        ("alias.moved", "txt@production"),
        ("policy.tightened", "txt"),
        ("policy.relaxed", "txt"),
        ("token.created", "ops"),
        ("token.revoked", "ops"),
    ]
    assert {(e["who"].split(":")[0], e["where"]) for e in entries} == {("local", socket.gethostname())}
    assert entries[4]["after"] == {"scope": "admin"}

    only_txt = json.loads(runner.invoke(cli, ["registry", "audit", "--model", "txt", "--json"]).output)
    assert len(only_txt) == 4 and {e["model"] for e in only_txt} == {"txt"}
    assert json.loads(runner.invoke(cli, ["registry", "audit", "--since", "2099-01-01", "--json"]).output) == []
    assert len(json.loads(runner.invoke(cli, ["registry", "audit", "--since", "1h", "--json"]).output)) == 6
    table = runner.invoke(cli, ["registry", "audit", "--limit", "2"]).output
    assert "audit log" in table and "when (UTC)" in table
    assert table.count("│ ops ") == 2 and "txt" not in table  # the newest two: the token's
    bad = runner.invoke(cli, ["registry", "audit", "--since", "last tuesday"])
    assert bad.exit_code == 2 and "since 'last tuesday'" in bad.output


def test_the_audit_log_is_append_only_in_the_database_and_reaches_an_existing_one(
    conveyor_home: Path, tmp_path: Path
) -> None:
    url = f"sqlite:///{tmp_path / 'old.db'}"
    store = SqlStore(url)
    with store.engine.begin() as conn:  # a registry made before the audit log existed
        conn.execute(text("DROP TABLE audit_log"))
    registry = open_local(url, str(tmp_path / "blobs"))
    registry.tokens.create("ci", "write")
    assert [e.action for e in registry.audit.entries()] == ["token.created"]
    for statement in ("UPDATE audit_log SET actor = 'someone else'", "DELETE FROM audit_log"):
        with pytest.raises(DBAPIError, match="append-only"), registry.store.engine.begin() as conn:
            conn.execute(text(statement))
    assert registry.audit.entries()[0].who.startswith("local:")


def _dashboard(registry: LocalRegistry, **options: object) -> TestClient:
    return TestClient(create_app(registry, tokens=registry.tokens, **options))  # type: ignore[arg-type]


def test_a_revoked_token_ends_its_dashboard_sessions_at_once(registry: LocalRegistry) -> None:
    aborted_rollout()
    token = registry.tokens.create("ops", "write")
    browser = _dashboard(registry, require_login=True)
    log_in(browser, token, "/rollouts/svc")
    csrf = csrf_of(browser.get("/rollouts/svc").text)
    retry = {"data": {"csrf": csrf}, "headers": {"hx-request": "true"}}
    assert browser.post("/rollouts/svc/actions/abort", **retry).status_code == 409  # logged in: nothing to abort

    registry.tokens.revoke("ops")
    refused = browser.post("/rollouts/svc/actions/retry", **retry)  # type: ignore[arg-type]
    assert (
        refused.status_code == 401 and refused.json()["error"] == "token 'ops' was revoked: log in with another token"
    )
    page = browser.get("/rollouts/svc")  # the session is gone: the login page, saying why nothing shows
    assert page.status_code == 401 and 'id="login-error"' in page.text and "log in" in page.text
    assert StatusStore("svc").load().phase == "aborted"  # nothing was retried


@pytest.mark.timeout(30)
def test_a_live_page_behind_a_login_stops_when_its_token_is_revoked(registry: LocalRegistry) -> None:
    aborted_rollout()
    token = registry.tokens.create("viewer", "read")
    browser = _dashboard(registry, require_login=True)
    log_in(browser, token, "/rollouts/svc")
    with browser.stream("GET", "/rollouts/svc/live") as live:
        lines = live.iter_lines()
        assert next(lines) == "event: update"
        registry.tokens.revoke("viewer")
        rest = list(lines)  # the stream ends by itself
    assert any("token &#x27;viewer&#x27; was revoked" in line for line in rest), rest[-3:]  # HTML-escaped


class Clock:
    """The dashboard's wall clock, moved on by the test."""

    def __init__(self) -> None:
        self.now = time.time()

    def time(self) -> float:
        return self.now


def test_an_idle_dashboard_session_ends(registry: LocalRegistry, monkeypatch: pytest.MonkeyPatch) -> None:
    clock = Clock()
    monkeypatch.setattr("conveyor.ui.auth.time", clock)
    aborted_rollout()
    token = registry.tokens.create("ops", "write")
    browser = _dashboard(registry, sessions=DashboardSessionSettings(session_idle_minutes=30, session_max_hours=2))
    log_in(browser, token, "/rollouts/svc")
    clock.now += 29 * 60
    page = browser.get("/rollouts/svc").text
    assert "ops (write)" in page
    clock.now += 29 * 60  # 58 minutes after the login, 29 after the last request: still in
    assert "ops (write)" in browser.get("/rollouts/svc").text
    clock.now += 31 * 60
    refused = browser.post("/rollouts/svc/actions/retry", data={"csrf": csrf_of(page)}, headers={"hx-request": "true"})
    assert refused.status_code == 401
    assert refused.json()["error"] == "your session was idle for more than 30 minutes: log in again"
    assert "ops (write)" not in browser.get("/rollouts/svc").text  # logged out for good

    log_in(browser, token, "/rollouts/svc")
    for _ in range(4):  # busy, never idle (100 minutes): still in
        clock.now += 25 * 60
        page = browser.get("/rollouts/svc").text
    assert "ops (write)" in page
    clock.now += 25 * 60  # but no login outlives its longest life
    refused = browser.post("/rollouts/svc/actions/retry", data={"csrf": csrf_of(page)}, headers={"hx-request": "true"})
    assert refused.status_code == 401
    assert refused.json()["error"] == "your session began more than 2 hours ago: log in again"


def test_the_dashboard_shows_the_audit_log_to_admins(registry: LocalRegistry) -> None:
    write = registry.tokens.create("ci", "write")
    admin = registry.tokens.create("security", "admin")
    registry.acting_as(registry.actor).set_tags("txt", None, {"team": "nlp"}, [])
    browser = _dashboard(registry)
    assert browser.get("/audit", headers={"accept": "application/json"}).status_code == 401
    log_in(browser, write)
    refused = browser.get("/audit", headers={"accept": "application/json"})
    assert refused.status_code == 403 and "needs admin" in refused.json()["error"]
    log_in(browser, admin)
    page = browser.get("/audit?model=txt").text
    assert 'data-action="policy.tightened"' in page and "require-signed=true" in page
    assert 'data-action="tags.changed"' in page and 'data-action="token.created"' not in page  # not about txt
    assert browser.get("/audit?since=nonsense").status_code == 422


def test_on_postgresql_the_audit_log_is_append_only_too(fresh_postgres: str, tmp_path: Path) -> None:
    registry = open_local(fresh_postgres, str(tmp_path / "blobs"))
    registry.tokens.create("ci", "write")
    registry.acting_as(Actor("ci", "10.1.2.3", "write")).tokens.revoke("ci")
    assert [(e.who, e.where, e.action) for e in registry.audit.entries()][1] == ("ci", "10.1.2.3", "token.revoked")
    for statement in ("UPDATE audit_log SET actor = 'x'", "DELETE FROM audit_log", "TRUNCATE audit_log"):
        with pytest.raises(DBAPIError, match="append-only"), registry.store.engine.begin() as conn:
            conn.execute(text(statement))
    assert len(registry.audit.entries()) == 2


def test_conveyor_yaml_pins_signatures_on_the_serving_side_whatever_the_registry_says(
    registry: LocalRegistry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from conveyor.supply_chain.keys import generate

    _, public = generate(tmp_path / "team")
    registry.set_tags("txt", None, {}, [POLICY])  # the registry's policy lifted (by its owner, audited)
    project = tmp_path / "project"
    project.mkdir()
    monkeypatch.chdir(project)
    (project / "conveyor.yaml").write_text(f"serve:\n  require_signed: true\n  trusted_key: [{public}]\n  port: 9\n")
    refused = CliRunner().invoke(cli, ["serve", "txt:1"])
    assert refused.exit_code == 1 and "txt:1 is not signed" in refused.output, refused.output


def test_the_machine_wide_pin_holds_for_rollouts_too(
    registry: LocalRegistry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from conveyor.supply_chain.keys import generate

    _, public = generate(tmp_path / "team")
    registry.set_tags("txt", None, {}, [POLICY])
    monkeypatch.chdir(tmp_path)
    env = {"CONVEYOR_REQUIRE_SIGNED": "1", "CONVEYOR_TRUSTED_KEYS": str(public)}
    refused = CliRunner().invoke(cli, ["rollout", "start", "txt:1", "--router", "http://127.0.0.1:9"], env=env)
    assert refused.exit_code == 1 and "txt:1 is not signed" in refused.output, refused.output


def test_a_policy_is_on_for_true_yes_or_1_in_any_case_and_anything_else_is_a_relaxation(
    registry: LocalRegistry,
) -> None:
    """docs/security.md: relaxing is unsetting, or setting anything but true, yes or 1 (any case)."""
    write = registry.tokens.create("ci", "write")
    client = TestClient(create_registry_app(registry))
    tags = "/api/v1/models/txt/tags"
    for on in ("TRUE", "yes", "1", "True"):  # still on: a write token may write it
        assert client.patch(tags, json={"set": {POLICY: on}}, headers=_bearer(write)).status_code == 200
    for off in ("true ", "on", "false", "y"):
        assert client.patch(tags, json={"set": {POLICY: off}}, headers=_bearer(write)).status_code == 403
    assert registry.get_model("txt").tags[POLICY] == "True"
