"""conveyor ui in real Chromium (Debian's, driven by Playwright): pages, a live canary, its buttons.

The dashboard runs as the ``conveyor ui`` command; the rollout is a real router, real backends
(the fake model servers of the rollout tests) and a real controller, with clients calling the
router all along. Screenshots for docs/dashboard.md are taken on the way.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests import models
from tests.conftest import free_port
from tests.registry_fixtures import run_cli
from tests.rollout_fixtures import Load, Proc, admin, fake_command, spawn, start_router, status_of, wait_for

CHROMIUM = "/usr/bin/chromium"
# make screenshots points this at docs/dashboard (the pictures in docs/dashboard.md); otherwise a temp folder
SHOTS = Path(os.environ.get("CONVEYOR_SCREENSHOTS") or tempfile.mkdtemp(prefix="conveyor-shots-"))
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
FAST = ["--min-requests", "10", "--min-compared", "5", "--p99-floor-ms", "2000"]


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: apt-get install chromium (.ci/run installs it)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        yield chromium
        chromium.close()


def start_ui(tmp: Path) -> Proc:
    port = free_port()
    args = [sys.executable, "-m", "conveyor", "ui", "--port", str(port), "--log-level", "warning"]
    return spawn(args, tmp / f"ui-{port}.log", f"http://127.0.0.1:{port}", "/healthz")


def shot(page, name: str) -> None:  # type: ignore[no-untyped-def]
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def test_registry_pages_show_what_the_cli_shows(browser, conveyor_home: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    folder = models.model_dir(tmp_path / "bert", "bert", models.tiny_bert_model)
    run_cli("models", "register", str(folder), "--name", "sentiment", "--alias", "production", check=True)
    run_cli("models", "register", str(folder), "--name", "sentiment", "--description", "second", check=True)
    run_cli("models", "tag", "sentiment:2", "team=nlp", check=True)
    run_cli("models", "register", str(folder), "--name", "other-model", check=True)
    listed = {m["name"]: m for m in json.loads(run_cli("models", "list", "--json", check=True).stdout)}
    shown = json.loads(run_cli("models", "show", "sentiment:1", "--json", check=True).stdout)
    ui = start_ui(tmp_path)
    try:
        page = browser.new_page()
        page.goto(ui.url + "/models")
        rows = {row.get_attribute("data-model"): row.inner_text() for row in page.locator("#models tbody tr").all()}
        assert set(rows) == set(listed)
        assert "production" in rows["sentiment"] and str(listed["sentiment"]["latest_version"]) in rows["sentiment"]
        shot(page, "models")

        page.fill("input[name=q]", "other")
        page.click("form.search button")
        assert [r.get_attribute("data-model") for r in page.locator("#models tbody tr").all()] == ["other-model"]

        page.goto(ui.url + "/models/sentiment")
        versions = page.locator("#versions tbody tr")
        assert [v.get_attribute("data-version") for v in versions.all()] == ["2", "1"]
        assert "team=nlp" in versions.first.inner_text() and "second" in versions.first.inner_text()

        page.click("#versions a:text-is('1')")
        assert page.locator("#digest").inner_text() == shown["digest"]
        files = page.locator("#files").inner_text()
        assert all(f["sha256"] in files and f["path"] in files for f in shown["files"])
        signature = page.locator("#signature").inner_text()
        assert "input_ids" in signature and "int64" in signature and "output" in signature
        shot(page, "version")

        page.goto(ui.url + "/models/nope")
        assert page.locator("#error-message").inner_text() == "model 'nope' not found"
    finally:
        ui.stop()


def test_a_live_canary_updates_without_reload_and_abort_needs_a_write_login(  # type: ignore[no-untyped-def]
    browser, conveyor_home: Path, tmp_path: Path
) -> None:
    router = start_router(tmp_path)
    ui = None
    try:
        run_cli("rollout", "start", "v1", "--service", "svc", "--command", fake_command("healthy"), check=True)
        token = run_cli("registry", "token", "create", "ops", "--scope", "write", "--json", check=True)
        secret = json.loads(token.stdout)["token"]
        ui = start_ui(tmp_path)
        with Load(router.url, clients=2):
            # many short steps: under a loaded CI machine the page may open at any of the first ones
            run_cli(
                "rollout", "start", "v2", "--service", "svc", "--command", fake_command("healthy"),
                "--steps", "10,20,30,40,50,60,70,80,100", "--interval", "4s", "--no-contract", "--detach",
                *FAST, check=True,
            )  # fmt: skip
            page = browser.new_page()
            page.on("dialog", lambda dialog: dialog.accept())
            page.goto(ui.url + "/rollouts/svc")
            page.evaluate("window.__notReloaded = true")
            canary_weight = page.locator("#traffic tr[data-role=canary] .set-weight")
            # the controller may still be starting the canary (0%) when the page opens: the page itself
            # must then move to the first step without a reload
            wait_for(lambda: canary_weight.inner_text() not in {"0%", "-"}, 40, "the page to show a first step")
            first = canary_weight.inner_text()
            assert first in {"10%", "20%", "30%", "40%"}, first
            wait_for(lambda: canary_weight.inner_text() != first, 40, "the page to show the next step")
            assert int(canary_weight.inner_text().rstrip("%")) > int(first.rstrip("%"))
            wait_for(lambda: page.locator("#analysis tr.analysis-run").count() >= 1, 10, "an analysis row")
            assert page.locator("#analysis .verdict").first.inner_text() == "successful"
            assert page.evaluate("window.__notReloaded === true"), "the page was reloaded"
            wait_for(lambda: page.locator("#traffic tr[data-role=canary] .actual-weight").inner_text() != "-", 10)
            shot(page, "rollout")

            page.click("button[data-action=abort]")  # no login: refused
            notice = page.locator("#notice")
            wait_for(lambda: notice.is_visible(), 10, "the refusal to be shown")
            assert notice.inner_text().startswith("401") and "log in" in notice.inner_text()
            assert status_of(conveyor_home)["phase"] == "progressing"

            page.goto(ui.url + "/login?next=/rollouts/svc")
            page.fill("input[name=token]", "not-a-token")
            page.click("form.login button")
            assert "invalid or revoked token" in page.locator("#login-error").inner_text()
            page.fill("input[name=token]", secret)
            page.click("form.login button")
            assert page.url.endswith("/rollouts/svc") and "ops (write)" in page.locator("#viewer").inner_text()
            assert secret not in page.content()

            page.click("button[data-action=abort]")
            wait_for(lambda: page.locator("#phase").inner_text() == "aborted", 40, "the page to show the abort")
        status = status_of(conveyor_home)
        assert status["phase"] == "aborted" and "dashboard by ops" in json.dumps(status["commands"])
        routes = httpx.get(router.url + "/_conveyor/routes", headers=admin(router.url), timeout=5).json()["backends"]
        assert [(b["name"], b["weight"]) for b in routes] == [("stable", 100.0)]
        assert page.locator("button[data-action=retry]").is_visible()
        shot(page, "rollout-aborted")

        page.goto(ui.url + "/rollouts")
        row = page.locator("#rollouts tr[data-service=svc]").inner_text()
        assert "aborted" in row and "canary" in row
    finally:
        if ui is not None:
            ui.stop()
        router.stop()
        from tests.rollout_fixtures import kill_backends

        kill_backends(conveyor_home)


def test_a_pipeline_run_shows_its_dag_steps_and_logs(browser, conveyor_home: Path, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    project = tmp_path / "project"
    project.mkdir()
    (project / "conveyor.yaml").write_text(
        "pipelines:\n"
        "  build:\n"
        "    steps:\n"
        '      fetch: {run: "echo fetched data"}\n'
        '      lint: {run: "echo lint clean", needs: [fetch]}\n'
        '      unit: {run: "echo 3 tests passed", needs: [fetch]}\n'
        '      report: {run: "echo one failing step; exit 3", needs: [lint, unit]}\n'
    )
    result = run_cli("pipeline", "run", "build", "--file", str(project / "conveyor.yaml"))
    assert result.returncode != 0
    runs = json.loads(run_cli("pipeline", "runs", "--json", check=True).stdout)
    run_id = runs[0]["id"]
    ui = start_ui(tmp_path)
    try:
        page = browser.new_page()
        page.goto(ui.url + "/pipelines")
        assert "failure" in page.locator(f"#runs tr[data-run='{run_id}']").inner_text()
        page.click(f"#runs a:text-is('{run_id}')")
        columns = page.locator(".dag-column")
        assert columns.count() == 3

        def names(column: int) -> list[str]:
            return sorted(s.get_attribute("data-step") for s in columns.nth(column).locator(".dag-step").all())

        assert names(0) == ["fetch"]
        assert names(1) == [
            "lint",
            "unit",
        ]
        assert page.locator(".dag-step[data-step=report]").get_attribute("data-status") == "failure"
        page.locator("#step-unit summary").click()
        assert "3 tests passed" in page.locator("#step-unit pre.log").inner_text()
        shot(page, "pipeline-run")

        # a run still going: its page follows it without a reload
        release = project / "release"  # the step runs until the test lets it end: no race with a busy machine
        wait = f"while [ ! -e {release} ]; do sleep 0.1; done; echo waited"
        (project / "conveyor.yaml").write_text(f'pipelines:\n  slow:\n    steps:\n      wait: {{run: "{wait}"}}\n')
        slow = subprocess.Popen(
            [sys.executable, "-m", "conveyor", "pipeline", "run", "slow", "--file", str(project / "conveyor.yaml")],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        running = wait_for(
            lambda: next((r["id"] for r in json.loads(run_cli("pipeline", "runs", "--json").stdout)
                          if r["pipeline"] == "slow"), None),
            30,
            "the slow run to start",
        )  # fmt: skip
        page.goto(f"{ui.url}/pipelines/runs/{running}")
        assert page.locator("#run-status").inner_text() == "running"
        page.evaluate("window.__notReloaded = true")
        release.touch()
        wait_for(lambda: page.locator("#run-status").inner_text() == "success", 30, "the page to show the end")
        assert page.evaluate("window.__notReloaded === true")
        assert slow.wait(30) == 0
    finally:
        ui.stop()
        shutil.rmtree(project, ignore_errors=True)
