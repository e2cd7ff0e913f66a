"""``--data-plane nginx``: nginx carries the traffic, this process is its control plane.

nginx is started as a child (its own session, so its workers go with it), given the routing table as
a rendered config (``router/nginx_config.py``) and reloaded gracefully (SIGHUP: new workers take new
connections, old ones finish their requests) on each admin change and each ejection or
readmission.  A config nginx refuses (``nginx -t``) is never applied: the change is refused and the
last good config keeps serving.  If nginx dies, it is started again at once on the last good config
(and the error logged); if this process dies, nginx keeps serving its last config, and the next
``conveyor router`` on the same state stops it (gracefully) before it starts its own.

The counters the rollout analysis reads come from nginx's access log: one syslog datagram per
proxied ``POST`` on loopback, parsed here into the same ``RouterStats`` the embedded router fills
(requests and codes per backend version, latency buckets, retries), with connection failures
ejecting a backend as in the embedded router.  Labels and input numbers need the answers: those
are counted on the model-aware path only (``nginx_config.model_aware``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

import aiohttp

from conveyor.atomic import write_atomic
from conveyor.errors import ConveyorError, InvalidInput
from conveyor.router.health import HealthTracker
from conveyor.router.nginx_config import LOG_FIELDS, LOG_TAG, Limits, Listen, group, render
from conveyor.router.routes import is_prediction
from conveyor.router.routing import BackendSpec, RouteTable
from conveyor.router.stats import LIVE, RouterStats

if TYPE_CHECKING:
    from conveyor.router.app import RouterOptions
    from conveyor.router.settings import RouterSettings
    from conveyor.tls import ServerTls

log = logging.getLogger("conveyor.router")

INSTALL_HINT = "install nginx (Debian: apt-get install nginx-light) or use --data-plane embedded"


def nginx_binary() -> str:
    """The nginx program; a named error when it is not installed."""
    found = shutil.which("nginx") or next((p for p in ("/usr/sbin/nginx",) if os.access(p, os.X_OK)), None)
    if found is None:
        raise ConveyorError(f"--data-plane nginx: nginx is not installed ({INSTALL_HINT})")
    return found


def nginx_plane(
    settings: RouterSettings, options: RouterOptions, control_port: int, tls: ServerTls | None
) -> NginxDataPlane:
    """The data plane ``conveyor router --data-plane nginx`` runs, its files beside the routes' state file."""
    state = options.state_file or Path(tempfile.mkdtemp(prefix="conveyor-router-")) / "routes.json"
    limits = Limits(timeout=options.timeout, max_body_bytes=options.max_body_bytes, retry=options.retry)
    pair = (tls["ssl_certfile"], tls["ssl_keyfile"]) if tls else None
    return NginxDataPlane(
        nginx_binary(), settings.host, settings.port, control_port, state.parent / "nginx", limits,
        payload_log=options.payload_log is not None, tls=pair,
    )  # fmt: skip


def stop_leftover(runtime: Path, timeout: float = 30.0) -> int | None:
    """Stop (gracefully) an nginx a killed control plane left serving on this state; its pid, if there was one."""
    try:
        pid = int((runtime / "nginx.pid").read_text().strip())
        command = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (OSError, ValueError):
        return None
    if b"nginx" not in command:
        return None
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGQUIT)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and Path(f"/proc/{pid}").exists():
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)  # workers of a master that did not finish in time
    return pid


class AccessLog(asyncio.DatagramProtocol):
    """nginx's syslog lines, one per proxied POST, into the router's counters."""

    def __init__(self, plane: NginxDataPlane) -> None:
        self.plane = plane

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        _, found, line = data.partition(f" {LOG_TAG}: ".encode())
        if found:
            with contextlib.suppress(ValueError, IndexError):
                self.plane.count(line.decode("latin-1").rstrip("\n"))


class NginxDataPlane:
    """One nginx process, its config, and the counters it reports."""

    def __init__(
        self,
        binary: str,
        host: str,
        port: int,
        control_port: int,
        runtime: Path,
        limits: Limits,
        payload_log: bool = False,
        tls: tuple[str, str] | None = None,
    ) -> None:
        self.binary, self.limits, self.payload_log = binary, limits, payload_log
        self.address, self.control_port, self.runtime, self.tls = (host, port), control_port, runtime, tls
        self.config = runtime / "nginx.conf"
        self.generation = 0
        self.table: RouteTable | None = None
        self.groups: dict[str, BackendSpec] = {}  # nginx's upstream names -> the backends, for the access log
        self.stats = RouterStats()
        self.health = HealthTracker("/", 1.0)
        self.listen: Listen | None = None
        self.process: subprocess.Popen[bytes] | None = None
        self.stopping = False
        self._supervisor: asyncio.Task[None] | None = None
        self._transport: asyncio.DatagramTransport | None = None
        self._reloading = asyncio.Lock()

    # -- lifecycle ---------------------------------------------------------------------------------------

    async def start(self, table: RouteTable, stats: RouterStats, health: HealthTracker) -> None:
        """Listen for the access log, render ``table``, start nginx and wait until it serves it."""
        from conveyor.containers import free_port

        self.stats, self.health = stats, health
        transport, _ = await asyncio.get_running_loop().create_datagram_endpoint(
            lambda: AccessLog(self), local_addr=("127.0.0.1", 0)
        )
        self._transport = transport
        log_port = transport.get_extra_info("sockname")[1]
        self.runtime.mkdir(parents=True, exist_ok=True)
        temp = Path(tempfile.mkdtemp(prefix="conveyor-nginx-"))
        temp.chmod(0o755)  # nginx's workers (nobody, when started as root) make their folders inside
        host, port = self.address
        cert, key = self.tls or (None, None)
        self.listen = Listen(host, port, self.control_port, log_port, free_port(), self.runtime, temp, cert, key)
        await self._write(table)
        await self._spawn()
        self._supervisor = asyncio.create_task(self._supervise(), name="nginx-supervisor")

    async def _spawn(self) -> None:
        self.process = subprocess.Popen(
            [self.binary, "-c", str(self.config), "-e", str(self.runtime / "error.log")],
            start_new_session=True,
            stdin=subprocess.DEVNULL,
        )
        if not await self._live(timeout=10):
            raise ConveyorError(f"nginx did not start: see {self.runtime / 'error.log'}")
        log.info("nginx (pid %s) carries the traffic on %s:%s", self.process.pid, *self.address)

    async def _supervise(self) -> None:
        """Start nginx again on the last good config whenever it dies while we do not stop it."""
        while not self.stopping:
            process = self.process
            assert process is not None
            code = await asyncio.to_thread(process.wait)
            if self.stopping:
                return
            log.error("nginx (pid %s) exited with %s: starting it again on the last good config", process.pid, code)
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(process.pid, signal.SIGKILL)  # its workers, if only the master died
            await asyncio.sleep(0.2)
            try:
                await self._spawn()
            except (ConveyorError, OSError) as exc:
                log.error("nginx could not be started again (%s); retrying in a second", exc)
                await asyncio.sleep(1)
                self.process = process  # wait() on the dead one returns at once: the loop tries again

    async def stop(self, timeout: float = 30.0) -> None:
        """Graceful: nginx answers the requests in flight, then exits (SIGQUIT)."""
        self.stopping = True
        process = self.process
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGQUIT)
            try:
                await asyncio.wait_for(asyncio.to_thread(process.wait), timeout)
            except TimeoutError:
                log.warning("nginx did not finish its requests in %ss: killed", timeout)
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(process.pid, signal.SIGKILL)
        if self._supervisor is not None:
            self._supervisor.cancel()
        if self._transport is not None:
            self._transport.close()
        if self.listen is not None:
            shutil.rmtree(self.listen.temp, ignore_errors=True)

    # -- routing changes ---------------------------------------------------------------------------------

    async def apply(self, table: RouteTable) -> None:
        """Render ``table`` (with the backends' health), check it with ``nginx -t``, reload, wait until live."""
        async with self._reloading:
            await self._write(table)
            if self.process is not None and self.process.poll() is None:
                self.process.send_signal(signal.SIGHUP)
                if not await self._live(timeout=10):
                    log.warning("nginx did not show config generation %s within 10 s", self.generation)

    async def _write(self, table: RouteTable) -> None:
        assert self.listen is not None
        generation = self.generation + 1
        text = render(table, self.health.healthy_names(), self.listen, self.limits, generation, self.payload_log)
        candidate = self.config.with_name("nginx.conf.next")
        write_atomic(candidate, text)
        checked = await asyncio.to_thread(
            subprocess.run,
            [self.binary, "-t", "-q", "-c", str(candidate), "-e", str(self.runtime / "error.log")],
            capture_output=True,
            text=True,
        )
        if checked.returncode != 0:
            problem = checked.stderr.strip().splitlines()
            raise InvalidInput(f"nginx refused the routing table: {problem[0] if problem else 'nginx -t failed'}")
        candidate.replace(self.config)
        self.generation, self.table = generation, table
        self.groups = {group(b, kind): b for b in table.backends for kind in "bp"}

    async def _live(self, timeout: float) -> bool:
        """Whether nginx answers with the current generation (a reload's new workers are taking connections)."""
        assert self.listen is not None
        url = f"http://127.0.0.1:{self.listen.status_port}/generation"
        deadline = time.monotonic() + timeout
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as session:
            while time.monotonic() < deadline:
                if self.process is not None and self.process.poll() is not None:
                    return False
                with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                    async with session.get(url, timeout=aiohttp.ClientTimeout(total=1)) as answer:
                        if (await answer.text()).strip() == str(self.generation):
                            return True
                await asyncio.sleep(0.02)
        return False

    # -- counting --------------------------------------------------------------------------------------

    def count(self, line: str) -> None:
        """One access-log line: each try of the request counted against the backend it reached."""
        *fields, uri = line.split("|", len(LOG_FIELDS) - 1)
        route, addresses, statuses, connects, headers, times = fields
        table = self.table
        if table is None or not is_prediction("POST", uri.split("?", 1)[0]):
            return
        first = self.groups.get(route)
        if first is None:
            return
        tries = list(
            zip(
                addresses.split(", "),
                statuses.split(", "),
                connects.split(", "),
                headers.split(", "),
                times.split(", "),
                strict=False,
            )
        )
        for number, (address, status, connect, header, seconds) in enumerate(tries):
            backend = _at(table, address, first)
            if backend is None:
                continue
            if header != "-":
                code = status
            elif connect == "-":
                code = "connect_error"
            else:
                code = "timeout" if status == "504" else "connection_lost"
            elapsed = float(seconds) if seconds not in ("-", "") else 0.0
            self.stats.of(backend.name, backend.version, LIVE).observe(code, elapsed)
            if code == "connect_error":
                self.health.failed(backend.name, f"connection to {address} failed", eject=True)
            elif code in ("502", "503"):
                self.health.failed(backend.name, f"answered HTTP {code}")
            if number + 1 < len(tries):
                self.stats.retries[(backend.name, backend.version)] += 1


def _at(table: RouteTable, address: str, chosen: BackendSpec) -> BackendSpec | None:
    """The backend that answered from ``address``: the chosen one if it is there, else a backup at that address."""
    if chosen.url.split("://", 1)[1] == address:
        return chosen
    return next((b for b in table.backends if b.url.split("://", 1)[1] == address), None)
