"""MLflow both ways, the parts a real MLflow server is not needed for (tests/journeys/test_mlflow.py runs one,
and checks MLflow's own webhook signature and a refused credential there, where MLflow is imported anyway):
the write-back's requests and credentials, one clear line for a download cut mid-way."""

from __future__ import annotations

import json
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from threading import Thread
from typing import Any, ClassVar

import pytest

from conveyor.errors import Unreachable
from conveyor.interop.mlflow_import import explained
from conveyor.interop.mlflow_mirror import follow_mlflow
from conveyor.interop.mlflow_ref import MlflowRef
from conveyor.registry.events import DeliveryFailed, make_event
from conveyor.registry.records import ModelVersion
from tests.conftest import free_port


class _FakeMlflow(BaseHTTPRequestHandler):
    """Records each API call; answers ``status`` (an error as MLflow's basic-auth app does: plain text)."""

    calls: ClassVar[list[tuple[str, dict[str, Any], str]]] = []
    status = 200

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length) or b"{}")
        _FakeMlflow.calls.append((self.path, body, self.headers.get("Authorization", "")))
        self.send_response(_FakeMlflow.status)
        self.end_headers()
        self.wfile.write(b"You are not authenticated." if _FakeMlflow.status >= 400 else b"{}")

    do_GET = do_POST = do_PATCH = _answer

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def fake_mlflow() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", free_port()), _FakeMlflow)
    Thread(target=server.serve_forever, daemon=True).start()
    _FakeMlflow.calls, _FakeMlflow.status = [], 200
    yield f"127.0.0.1:{server.server_port}"
    server.shutdown()


def _imported(host: str) -> ModelVersion:
    return ModelVersion.model_validate(
        {"name": "cancer", "version": 3, "digest": "d", "size": 1, "files": [], "created_at": "2026-12-07T00:00:00Z",
         "properties": {"mlflow.uri": f"mlflow://{host}/cancer/2", "mlflow.alias.production": "champion"}}
    )  # fmt: skip


def test_a_promotion_tags_the_mlflow_version_and_moves_the_asked_alias_with_mlflows_credential(
    fake_mlflow: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", "tok")
    version = _imported(fake_mlflow)
    follow_mlflow(make_event("alias.moved", "cancer", 3, alias="production"), version)
    follow_mlflow(make_event("version.tagged", "cancer", 3, tags={"verify": "passed"}), version)
    follow_mlflow(make_event("alias.moved", "cancer", 3, alias="staging"), version)  # not asked: a tag only
    assert _FakeMlflow.calls == [
        ("/api/2.0/mlflow/model-versions/set-tag",
         {"name": "cancer", "version": "2", "key": "conveyor.alias.production", "value": "cancer:3"}, "Bearer tok"),
        ("/api/2.0/mlflow/registered-models/alias",
         {"name": "cancer", "alias": "champion", "version": "2"}, "Bearer tok"),
        ("/api/2.0/mlflow/model-versions/set-tag",
         {"name": "cancer", "version": "2", "key": "conveyor.verify", "value": "passed"}, "Bearer tok"),
        ("/api/2.0/mlflow/model-versions/set-tag",
         {"name": "cancer", "version": "2", "key": "conveyor.alias.staging", "value": "cancer:3"}, "Bearer tok"),
    ]  # fmt: skip
    _FakeMlflow.status = 401
    with pytest.raises(DeliveryFailed, match="wrong or missing credential") as refused:
        follow_mlflow(make_event("alias.moved", "cancer", 3, alias="production"), version)
    assert refused.value.final  # not retried: the same credential fails again


def test_a_cut_download_says_which_file_and_why() -> None:
    cut = Exception(  # what MLflow's artifact repository raises, as text: importing MLflow here costs seconds
        "The following failures occurred while downloading one or more artifacts from "
        "http://127.0.0.1:5000/api/2.0/mlflow-artifacts/artifacts/1/models/m-1/artifacts:\n"
        "##### File model.skops #####\n"
        "('Connection broken: IncompleteRead(65536 bytes read, 1048576 more expected)', IncompleteRead(...))"
    )
    error = explained(cut, MlflowRef("http://127.0.0.1:5000", "cancer", version="2"))
    assert isinstance(error, Unreachable)
    assert str(error).startswith("downloading mlflow://127.0.0.1:5000/cancer/2 from http://127.0.0.1:5000 was cut")
    assert "model.skops: ('Connection broken: IncompleteRead(65536 bytes read" in str(error)
