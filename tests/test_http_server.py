"""Every server's connections, for real: half-sent requests are cut, SIGTERM answers every accepted client.

``conveyor/http_server.py`` runs all four servers; these tests start the real commands on
127.0.0.1 and talk raw TCP to them, because the behaviour lives below HTTP clients: a client that
stops in the middle of its headers or body, and connections still in the kernel's listen queue
when SIGTERM arrives.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.conftest import REPO, Server, free_port, start_server
from tests.waiting import wait_for

HALF_HEADER = b"POST /predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: applica"
HALF_BODY = (
    b'POST /predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 40\r\n\r\n["go'
)
FULL = (
    b"POST /predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 8\r\n"
    b'Connection: close\r\n\r\n["good"]'
)


def _port(url: str) -> int:
    return int(url.rsplit(":", 1)[1])


def _open(port: int, first_bytes: bytes) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    sock.sendall(first_bytes)
    return sock


def _read_all(sock: socket.socket, timeout: float) -> bytes:
    """Everything the server sends until it closes the connection (raises on a reset)."""
    sock.settimeout(timeout)
    chunks = []
    while chunk := sock.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)


def _cut_within(sockets: list[socket.socket], seconds: float) -> list[bytes]:
    """What each half-sent connection received before the server closed it; fails if one stays open."""
    deadline = time.monotonic() + seconds
    answers = []
    for sock in sockets:
        try:
            answers.append(_read_all(sock, max(0.1, deadline - time.monotonic())))
        except TimeoutError:
            raise AssertionError(f"a half-sent connection was still open {seconds:g} s after it started") from None
        finally:
            sock.close()
    return answers


def test_two_hundred_half_sent_requests_are_cut_after_the_timeout_while_others_are_answered(
    vote_model: Path, tmp_path: Path
) -> None:
    server = start_server(vote_model, "--header-timeout", "1", "--body-timeout", "1", tmp_path=tmp_path)
    try:
        port = _port(server.url)
        started = time.monotonic()
        stalled = [_open(port, HALF_HEADER if i % 2 else HALF_BODY) for i in range(200)]
        answered = httpx.post(f"{server.url}/predict", json=["good"], timeout=5)  # meanwhile: a normal request
        assert answered.status_code == 200 and answered.json() == {"positive": True}
        assert time.monotonic() - started < 1.0, "the normal request waited for the stalled ones"
        answers = _cut_within(stalled, seconds=6)
        took = time.monotonic() - started
        half_headers, half_bodies = answers[1::2], answers[0::2]
        assert all(a.startswith(b"HTTP/1.1 408 ") and b"not received within 1 s" in a for a in half_headers)
        assert all(a == b"" for a in half_bodies)  # the body stalled: closed, no answer to a request never sent
        assert 1.0 <= took < 6, took
        huge = _open(port, b"GET /v2 HTTP/1.1\r\nX-Pad: " + b"a" * 70_000)
        assert _read_all(huge, timeout=5).startswith(b"HTTP/1.1 431 ")  # headers over 64 KiB, without waiting
        whole = _open(port, b"GET /v2 HTTP/1.1\r\nX-Pad: " + b"a" * 100_000 + b"\r\n\r\n")
        assert _read_all(whole, timeout=5).startswith(b"HTTP/1.1 431 ")  # complete, in one read: refused too
        assert httpx.get(f"{server.url}/v2", headers={"X-Pad": "a" * 60_000}, timeout=5).status_code == 200
    finally:
        server.stop()


def _start(command: list[str], tmp_path: Path, *more: str) -> Server:
    """``conveyor COMMAND --port P MORE...`` on 127.0.0.1, once it listens."""
    port = free_port()
    log = tmp_path / "server.log"
    args = [sys.executable, "-m", "conveyor", *command, "--port", str(port), *more]
    with open(log, "wb") as out:
        process = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, cwd=REPO, env=os.environ.copy())
    server = Server(process, f"http://127.0.0.1:{port}", log)

    def listening() -> bool:
        if process.poll() is not None:
            raise AssertionError(f"{command} exited:\n{server.log()}")
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True

    try:
        wait_for(listening, timeout=60, what=f"{command} to listen")
    except AssertionError:
        server.stop()
        raise
    return server


@pytest.mark.parametrize(
    "command",
    [["router", "--service", "timeouts"], ["registry", "serve", "--insecure-no-auth"], ["ui"]],
    ids=["router", "registry-serve", "ui"],
)
def test_every_server_cuts_a_half_sent_header(command: list[str], conveyor_home: Path, tmp_path: Path) -> None:
    server = _start(command, tmp_path, "--header-timeout", "1")
    try:
        started = time.monotonic()
        stalled = [_open(_port(server.url), HALF_HEADER) for _ in range(20)]
        answers = _cut_within(stalled, seconds=6)
        assert all(a.startswith(b"HTTP/1.1 408 ") for a in answers), answers[:1]
        assert time.monotonic() - started >= 1.0
    finally:
        server.stop()


# A connection whose handshake the kernel completes in the instant between the server's last accept()
# and its shutdown of the listening socket is reset: the race the drain narrows to microseconds (the
# code before the drain reset 112 to 1,116 of such a burst). A loaded machine can stretch the instant.
RACE_RESETS_ALLOWED = 2


def _burst_then_sigterm(server: Server, before: int = 50, most: int = 5000) -> tuple[list[socket.socket], int, int]:
    """Connect as fast as possible, each sending a whole request; SIGTERM after the first ``before``, and go on
    connecting (a millisecond apart) until the server refuses connections.

    Returns the connections the kernel accepted, how many later ones were refused, and how many were reset
    as they sent their request (the race)."""
    port, opened, refused, raced = _port(server.url), [], 0, 0
    for index in range(most):
        if index == before:
            server.process.send_signal(signal.SIGTERM)
        try:
            opened.append(_open(port, FULL))
        except ConnectionResetError:  # reset while sending its request: the race above, only after SIGTERM
            assert index >= before, "a connection was reset before the server was asked to stop"
            raced += 1
        except ConnectionRefusedError:
            refused += 1
            if refused >= 20:
                break  # the listening socket is closed: later clients are refused
        if index >= before:
            time.sleep(0.001)  # uvicorn's worker supervisor looks at its signals twice a second
    return opened, refused, raced


@pytest.mark.parametrize("server_kind", ["serve", "serve --workers 2", "router"])
def test_sigterm_answers_every_accepted_connection_then_exits_by_the_signal(
    server_kind: str, vote_model: Path, conveyor_home: Path, tmp_path: Path
) -> None:
    if server_kind == "router":  # no backend: every request is a whole 503 answer
        server, expected = _start(["router", "--service", "drain"], tmp_path), b"HTTP/1.1 503 "
    else:
        server = start_server(vote_model, *server_kind.split()[1:], tmp_path=tmp_path)
        expected = b"HTTP/1.1 200 "
    try:
        opened, refused, raced = _burst_then_sigterm(server)
        outcomes: dict[str, int] = {}
        for sock in opened:
            try:
                answer = _read_all(sock, timeout=30)
                kind = "answered" if answer.startswith(expected) and answer.rstrip().endswith((b"}", b"0")) else "cut"
            except ConnectionResetError:
                kind = "reset"
            finally:
                sock.close()
            outcomes[kind] = outcomes.get(kind, 0) + 1
        # the race above shows as a reset on the send or, if the request fitted in the buffer, on the read
        reset_on_read = outcomes.pop("reset", 0)
        assert outcomes == {"answered": len(opened) - reset_on_read}, (outcomes, refused)  # none cut mid-answer
        raced += reset_on_read
        assert raced <= RACE_RESETS_ALLOWED, f"{raced} connections reset during the drain ({outcomes})"
        assert refused, "the burst never saw the server stop listening"
        assert server.process.wait(30) == -signal.SIGTERM  # docs/serving.md: the status says SIGTERM
    finally:
        server.stop()
