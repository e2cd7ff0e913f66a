"""How every Conveyor server runs uvicorn: read deadlines per connection, and a stop that drops no accepted client.

``conveyor serve`` (one process or ``--workers N``), ``conveyor router``, ``conveyor registry
serve`` and ``conveyor ui`` all start here, so the same rules hold for all four:

* **Read deadlines.**  uvicorn (0.54) times out only an idle keep-alive connection, after a
  response; a client that opens a connection and sends half a header, or stops in the middle of a
  body, holds its connection for ever (1,000 such connections stayed open).  :class:`TimedHttpToolsProtocol`
  gives each request ``header_timeout`` seconds from its first byte (from the connection's
  start, for the first request) to its last header line, then answers ``408`` and closes; and
  closes a connection whose body sends nothing for ``body_timeout`` seconds while the server waits
  for it (a slow upload that keeps sending is never cut, nor one the application is slow to read).
  Headers over 64 KiB are ``431``.  nginx's ``client_header_timeout``/``client_body_timeout`` are
  the same two rules.
* **A drained backlog on SIGTERM.**  uvicorn's shutdown closes the listening socket, and the
  kernel resets every connection still waiting in its listen queue: clients whose handshake had
  completed were cut without an answer.  :class:`DrainingServer` first accepts everything
  waiting, stops the socket listening (``shutdown(SHUT_RD)``: later clients are refused, cleanly,
  in every worker that shares it), gives each accepted connection up to ``header_timeout`` to send
  its request, and only then lets uvicorn finish: in-flight requests end within
  ``timeout_graceful_shutdown``.
  With ``--workers N`` the socket is shared, so a worker never stops alone: uvicorn's SIGHUP
  (restart the workers one by one) and SIGTTOU (one worker fewer) are ignored.
* **The exit status.**  A server stopped by SIGTERM or SIGINT ends by that signal (status 143 or
  130 in a shell), with one process as with ``--workers N`` (uvicorn's worker supervisor returned 0).

The protocol is uvicorn's httptools one, subclassed at its parser callbacks; the supervisor is
uvicorn's, whose workers run :class:`DrainingServer`.  Both lean on uvicorn's internals, which
``tests/test_http_server.py`` exercises for real.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import sys
from collections.abc import Callable
from functools import partial
from typing import Any

import orjson
import uvicorn
from uvicorn.config import STARTUP_FAILURE
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.supervisors.multiprocess import Multiprocess, Process

from conveyor.settings import ReadTimeoutSettings

log = logging.getLogger(__name__)

#: request headers larger than this are refused (431), as h11's default 16 KiB bound, with room
MAX_HEADER_BYTES = 64 * 1024


class TimedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with a header deadline, a body stall timeout and a header size bound."""

    def __init__(self, *args: Any, header_timeout: float, body_timeout: float, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.header_timeout, self.body_timeout = header_timeout, body_timeout
        self._timer: asyncio.TimerHandle | None = None
        self._header_bytes = 0
        self._in_headers = False  # bytes of a request's head have arrived, not yet all of it
        self._in_body = False  # the head has arrived, the body has not ended

    # -- uvicorn's callbacks ---------------------------------------------------------------------
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm(self.header_timeout, self._headers_late)

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._in_body:
            self._arm(self.body_timeout, self._body_stalled)  # bytes arrived: the stall starts again
        if not self._in_body:
            self._header_bytes += len(data)
            if self._header_bytes > MAX_HEADER_BYTES and self._head_in(data) > MAX_HEADER_BYTES:
                # a whole head too big in one read: refused before the parser would complete (and accept) it
                self._refuse(431, f"request headers over {MAX_HEADER_BYTES // 1024} KiB")
                return
        super().data_received(data)
        if self._in_headers and self._header_bytes > MAX_HEADER_BYTES and not self.transport.is_closing():
            self._refuse(431, f"request headers over {MAX_HEADER_BYTES // 1024} KiB")

    def _head_in(self, data: bytes) -> int:
        """The bytes of the request's head so far, counting ``data`` only up to the blank line that ends it."""
        end = data.find(b"\r\n\r\n")
        return self._header_bytes if end < 0 else self._header_bytes - len(data) + end

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._in_headers, self._in_body = True, False
        if self._timer is None:  # a keep-alive connection's next request (the first is timed from the connection)
            self._arm(self.header_timeout, self._headers_late)

    def on_headers_complete(self) -> None:
        super().on_headers_complete()
        self._in_headers, self._in_body, self._header_bytes = False, True, 0
        self._arm(self.body_timeout, self._body_stalled)

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._in_body = False
        self._disarm()

    # -- the deadlines ---------------------------------------------------------------------------
    def _arm(self, seconds: float, expired: Any) -> None:
        self._disarm()
        self._timer = self.loop.call_later(seconds, expired)

    def _disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _headers_late(self) -> None:
        self._timer = None
        if self.transport.is_closing():
            return
        if self.cycle is not None and not self.cycle.response_complete:
            self.cycle.keep_alive = False  # answering a request: close after it, the next one is dropped
            return
        if self._in_headers:
            self._refuse(408, f"request headers not received within {self.header_timeout:g} s")
        else:
            self.transport.close()  # nothing sent at all

    def _body_stalled(self) -> None:
        self._timer = None
        if self.transport.is_closing() or not self._in_body:
            return
        if self.flow.read_paused or (self.cycle is not None and self.cycle.waiting_for_100_continue):
            # the application has not read what came, or not asked for the body yet: not the client's stall
            self._arm(self.body_timeout, self._body_stalled)
            return
        log.info("closing a connection from %s: its request body stalled for %g s", self.client, self.body_timeout)
        self.transport.close()

    def _refuse(self, status: int, message: str) -> None:
        self._disarm()
        body = orjson.dumps({"error": message})
        reason = {408: "Request Timeout", 431: "Request Header Fields Too Large"}[status]
        head = f"HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\ncontent-length: {len(body)}\r\n"
        self.transport.write(head.encode() + b"connection: close\r\n\r\n" + body)
        self.transport.close()


def timed_http(header_timeout: float, body_timeout: float) -> Any:
    """uvicorn's ``http=`` for :class:`TimedHttpToolsProtocol` (picklable, so ``--workers`` children get it)."""
    return partial(TimedHttpToolsProtocol, header_timeout=header_timeout, body_timeout=body_timeout)


class DrainingServer(uvicorn.Server):
    """A uvicorn server that answers the connections in its listen queue before it stops (see the module)."""

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self._drained: set[asyncio.Task[Any]] = set()  # connections accepted from the queue, starting

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        accepted = self._drain_backlog()
        if accepted:
            log.info("answering %d connection(s) that were waiting to be accepted", accepted)
        await self._wait_for_requests()
        await super().shutdown(sockets)

    def _drain_backlog(self) -> int:
        """Accept every connection the kernel holds, then stop listening; synchronous, so nothing slips between."""
        loop = asyncio.get_running_loop()
        config = self.config
        factory = partial(
            config.http_protocol_class,  # type: ignore[call-arg]
            config=config,
            server_state=self.server_state,
            app_state=self.lifespan.state,
        )
        accepted = 0
        for server in self.servers:
            for listening in server.sockets or ():
                # uvloop hands out a pseudo-socket without accept(): a duplicate descriptor of the same socket
                sock = socket.socket(fileno=os.dup(listening.fileno()))
                try:
                    sock.setblocking(False)
                    while True:
                        try:
                            conn, _ = sock.accept()
                        except (BlockingIOError, InterruptedError):
                            break
                        except OSError:
                            break  # another worker stopped the socket listening first
                        conn.setblocking(False)
                        task = loop.create_task(loop.connect_accepted_socket(factory, conn, ssl=config.ssl))
                        self._drained.add(task)
                        task.add_done_callback(_settled)
                        task.add_done_callback(self._drained.discard)
                        accepted += 1
                    with contextlib.suppress(OSError):
                        sock.shutdown(socket.SHUT_RD)  # stop listening: later clients are refused, in every worker
                finally:
                    sock.close()
        return accepted

    async def _wait_for_requests(self) -> None:
        """Give every accepted connection that has sent no request yet up to its header deadline to send one."""
        keywords = getattr(self.config.http_protocol_class, "keywords", {})
        deadline = asyncio.get_running_loop().time() + float(keywords.get("header_timeout", 5.0))
        await asyncio.sleep(0)  # the drained connections' protocols start
        if self._drained:  # with TLS, a drained connection is one only once its handshake is done
            await asyncio.wait(set(self._drained), timeout=deadline - asyncio.get_running_loop().time())
        while asyncio.get_running_loop().time() < deadline:
            waiting = [
                c
                for c in self.server_state.connections
                if getattr(c, "cycle", None) is None and not c.transport.is_closing()
            ]
            if not waiting:
                return
            await asyncio.sleep(0.01)


def _settled(task: asyncio.Task[Any]) -> None:
    """A drained connection that failed to start (the client left): nothing to answer, nothing to log."""
    if not task.cancelled():
        task.exception()


class _Worker(Process):
    """One of ``--workers N``: a uvicorn worker process whose server drains."""

    @property
    def server(self) -> uvicorn.Server:
        if self._server is None:
            self._server = DrainingServer(config=self.config)
        return self._server


class _Workers(Multiprocess):
    """uvicorn's worker supervisor with draining workers, remembering the signal that stopped it."""

    stopped_by: int | None = None

    def init_processes(self) -> None:
        for _ in range(self.processes_num):
            self.processes.append(self._start())

    def _start(self) -> Process:
        process = _Worker(self.config, self.sockets)
        process.start()
        return process

    def keep_subprocess_alive(self) -> None:
        if self.should_exit.is_set():
            return
        for index, process in enumerate(self.processes):
            if process.is_alive(timeout=self.config.timeout_worker_healthcheck):
                continue
            process.kill()
            process.join()
            if process.exitcode == STARTUP_FAILURE:
                logging.getLogger("uvicorn.error").error("worker %s failed to start; stopping", process.pid)
                self.should_exit.set()
                return
            self.processes[index] = self._start()

    def handle_ttin(self) -> None:
        self.processes_num += 1
        self.processes.append(self._start())

    def handle_hup(self) -> None:
        # uvicorn replaces its workers one by one on SIGHUP (fewer on SIGTTOU); a draining worker that
        # stops takes the shared socket out of listening for all, so here the whole server restarts instead
        logging.getLogger("uvicorn.error").warning("SIGHUP ignored: to restart the workers, restart the server")

    def handle_ttou(self) -> None:
        logging.getLogger("uvicorn.error").warning("SIGTTOU ignored: the number of workers is fixed while serving")

    def handle_term(self) -> None:
        self.stopped_by = signal.SIGTERM
        super().handle_term()

    def handle_int(self) -> None:
        self.stopped_by = signal.SIGINT
        super().handle_int()


def run(config: uvicorn.Config, cleanup: Callable[[], None] | None = None) -> None:
    """Serve ``config`` until SIGTERM/SIGINT, in ``config.workers`` processes; then end by that signal.

    ``cleanup`` (the workers' shared folders) runs before the supervisor ends; a single process
    cleans up in its application's lifespan, as uvicorn ends it by the signal itself."""
    if config.workers > 1:
        sock = config.bind_socket()
        workers = _Workers(config, sockets=[sock])
        try:
            workers.run()
        finally:
            sock.close()
            if cleanup is not None:
                cleanup()
        if workers.stopped_by is not None:
            signal.signal(workers.stopped_by, signal.SIG_DFL)
            signal.raise_signal(workers.stopped_by)
        return
    server = DrainingServer(config)
    server.run()  # re-raises the signal that stopped it, once stopped
    if not server.started:
        sys.exit(STARTUP_FAILURE)


def server_config(app: Any, host: str, port: int, timeouts: ReadTimeoutSettings, **more: Any) -> uvicorn.Config:
    """uvicorn's Config as every Conveyor server runs it: the timed protocol, no ``Server`` header."""
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        http=timed_http(timeouts.header_timeout, timeouts.body_timeout),
        server_header=False,
        **more,
    )
