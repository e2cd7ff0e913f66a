"""Waiting for a server to be ready: an exited server and a timeout are reported with its logs."""

from __future__ import annotations

import pytest


def test_wait_until_ready_reports_an_exited_server_and_a_timeout_with_its_logs() -> None:
    from conveyor.containers import free_port
    from conveyor.errors import ConveyorError
    from conveyor.readiness import wait_until_ready

    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    with pytest.raises(ConveyorError, match=r"the backend exited before it was ready:\nlast log line"):
        wait_until_ready(url, lambda: False, lambda: "last log line", 5, "the backend")
    with pytest.raises(ConveyorError, match=r"was not ready after 0.5s \(ConnectError\):\nlast log line"):
        wait_until_ready(url, lambda: True, lambda: "last log line", 0.5, "the backend")
