"""Webhooks that cannot slow the registry: delivery off the request path, retried with backoff; a watch
removes its webhook on SIGTERM and SIGINT; ``registry webhook`` finds the registry the other commands find."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import pytest
from typer.testing import CliRunner

from conveyor.cli.main import app
from conveyor.registry.config import open_local, open_registry
from conveyor.registry.local import LocalRegistry
from tests.conftest import free_port
from tests.waiting import wait_for


class _Counting(BaseHTTPRequestHandler):
    kinds: ClassVar[list[str]] = []

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["Content-Length"]))
        _Counting.kinds.append(self.headers["X-Conveyor-Event"])
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


def test_a_receiver_that_is_down_costs_the_registry_nothing_and_the_live_one_still_hears(
    conveyor_home: Path, vote_model: Path, caplog: pytest.LogCaptureFixture
) -> None:
    registry = open_local()
    live = ThreadingHTTPServer(("127.0.0.1", free_port()), _Counting)
    threading.Thread(target=live.serve_forever, daemon=True).start()
    _Counting.kinds = []
    try:
        registry.webhooks.add(f"http://127.0.0.1:{free_port()}/gone", "s")  # a watch killed long ago
        registry.webhooks.add(f"http://127.0.0.1:{live.server_port}/hook", "s")
        registry.register(vote_model, "votes")
        started = time.monotonic()
        for alias in ("a", "b", "c"):
            registry.set_alias("votes", alias, 1)
        took = time.monotonic() - started
        assert took < 1.5, f"three alias moves took {took:.1f}s: they waited for a receiver"
        wait_for(lambda: len(_Counting.kinds) == 4, timeout=20, what="the live receiver's four events")
        assert _Counting.kinds == ["model_version.created", "alias.moved", "alias.moved", "alias.moved"]
    finally:
        live.shutdown()
    # the dead one is still backing off (0.5 s, 1 s, 2 s ...); an exiting process stops retrying at once
    with caplog.at_level(logging.WARNING, logger="conveyor.registry.events"):
        started = time.monotonic()
        registry.events.close(grace=5)
        assert time.monotonic() - started < 4
    assert any("/gone" in r.getMessage() and "not delivered" in r.getMessage() for r in caplog.records), caplog.text


def test_webhook_commands_find_the_folder_registry_the_other_commands_find(
    conveyor_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "team-registry"
    monkeypatch.setenv("CONVEYOR_REGISTRY", str(folder))
    runner = CliRunner()
    added = runner.invoke(app, ["registry", "webhook", "add", "http://127.0.0.1:9/hook", "--secret", "s"])
    assert added.exit_code == 0, added.output
    listed = runner.invoke(app, ["registry", "webhook", "list", "--json"])
    assert json.loads(listed.stdout) == ["http://127.0.0.1:9/hook"]
    assert [url for url, _ in open_registry(str(folder)).webhooks.all()] == ["http://127.0.0.1:9/hook"]  # type: ignore[union-attr]
    assert open_local().webhooks.all() == []  # not the home registry's
    monkeypatch.setenv("CONVEYOR_REGISTRY", "http://127.0.0.1:9")
    remote = runner.invoke(app, ["registry", "webhook", "list"])
    assert remote.exit_code != 0 and "its webhooks are kept in its database" in remote.output, remote.output


def test_a_watch_stopped_by_sigterm_or_sigint_removes_its_webhook(tmp_path: Path) -> None:
    folder = tmp_path / "registry"
    (tmp_path / "conveyor.yaml").write_text(
        "pipelines:\n  deliver:\n    triggers: [{model_version: {model: votes}}]\n    steps: {show: {run: 'echo hi'}}\n"
    )
    env = {**os.environ, "CONVEYOR_REGISTRY": str(folder), "CONVEYOR_HOME": str(tmp_path / "home")}
    command = [sys.executable, "-m", "conveyor.cli.main", "pipeline", "watch"]
    output = {"cwd": tmp_path, "env": env, "stdout": subprocess.PIPE, "stderr": subprocess.STDOUT, "text": True}
    ignore_sigint = lambda: signal.signal(signal.SIGINT, signal.SIG_IGN)  # noqa: E731
    watches = {
        signal.SIGTERM: subprocess.Popen(command, **output),  # type: ignore[call-overload]
        # started as a shell's `watch &` (or nohup) starts it: SIGINT inherited as ignored; the watch still ends on it
        signal.SIGINT: subprocess.Popen(command, preexec_fn=ignore_sigint, **output),  # type: ignore[call-overload]
    }
    registry = open_registry(str(folder))
    assert isinstance(registry, LocalRegistry)
    try:
        wait_for(lambda: len(registry.webhooks.all()) == 2, timeout=60, what="both watches' webhooks")
        for signum, watch in watches.items():
            watch.send_signal(signum)
        for watch in watches.values():
            watch.wait(timeout=60)  # a loaded machine: the bound, not the expectation
    finally:
        for watch in watches.values():
            if watch.poll() is None:
                watch.kill()
    outputs = [watch.stdout.read() if watch.stdout else "" for watch in watches.values()]
    assert registry.webhooks.all() == [], outputs
    assert all(watch.returncode == 0 for watch in watches.values()), outputs


def test_a_receiver_that_stays_down_is_warned_about_once_until_it_answers_again(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from conveyor.registry import events

    monkeypatch.setattr(events, "RETRY_DELAYS", (0.0, 0.0))
    down = True
    delivered: list[str] = []

    def deliver(event: object, payload: object) -> None:
        if down:
            raise events.DeliveryFailed("[Errno 111] Connection refused")
        delivered.append(str(payload))

    receiver = events._Receiver("webhook http://127.0.0.1:9/dead", deliver, threading.Event(), lambda: False)
    with caplog.at_level(logging.WARNING, logger="conveyor.registry.events"):
        for number in range(3):  # three events, three attempts each: nine failures
            receiver.pending.put((events.make_event("alias.moved", "votes", 1), number))
        receiver.pending.join()
        down = False
        receiver.pending.put((events.make_event("alias.moved", "votes", 1), "back"))
        receiver.pending.join()
    lines = [r.getMessage() for r in caplog.records]
    assert sum("attempt" in line and "failed" in line for line in lines) == 1, lines
    assert sum("giving up on event" in line for line in lines) == 3, lines  # each lost event is still named
    assert any("answers again" in line for line in lines) and delivered == ["back"], lines


def test_opening_a_registry_to_read_it_loads_no_http_client(tmp_path: Path) -> None:
    """`conveyor monitor churn@production` opens the registry only to read a version: the webhook and
    MLflow write-back clients (httpx) load when an event is delivered, not with the registry."""
    probe = (
        "import sys\nfrom conveyor.registry.config import open_registry\n"
        f"open_registry({str(tmp_path / 'reg')!r}).list_models()\n"
        "print('httpx' in sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"
