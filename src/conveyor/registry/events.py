"""Registry events: signed webhooks, local hooks and in-process followers, delivered off the request path.

Webhooks get a JSON POST with ``X-Conveyor-Event``, ``X-Conveyor-Delivery``
and ``X-Conveyor-Signature: sha256=<hex HMAC-SHA256 of the body with the
webhook's secret>``; receivers recompute the HMAC and compare in constant
time (see ``verify_signature``).  Local hooks are executables in
``$CONVEYOR_HOME/hooks/``: each runs with the event JSON on stdin, so a
pipeline can react to a new version without polling.  Followers are functions
of this process told of each event with the version it is about (the MLflow
write-back, ``conveyor.interop.mlflow_mirror``).

Why a queue per receiver: a change to the registry (an alias set, a version
registered) must not wait for anybody's receiver.  ``emit`` only queues; one
thread per receiver delivers its events in order, retrying a failure with
exponential backoff, so a receiver that is down (a watch killed without
removing its webhook) delays its own queue and nothing else.  A process that
exits (a one-shot CLI command) first lets each queue finish what it holds,
with no further retries, for at most ``EXIT_GRACE`` seconds, and says in one
warning line per receiver what it could not deliver; local hooks (the user's own
programs, which may run a pipeline) are waited for to the end, as before.
"""

from __future__ import annotations

import atexit
import hashlib
import hmac
import logging
import os
import queue
import subprocess
import threading
import time
import uuid
import weakref
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from conveyor.registry.records import Event, ModelVersion
from conveyor.registry.schema import now

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Conveyor-Signature"
RETRY_DELAYS = (0.5, 1.0, 2.0, 4.0, 8.0)  # exponential backoff between attempts, seconds
HOOKS = "local hooks"
IDLE_EXIT = 5.0  # seconds a receiver's thread waits for more events before it ends
EXIT_GRACE = 10.0  # seconds an exiting process waits for its queues (first attempts only)

Follower = Callable[[Event, ModelVersion | None], None]


def sign(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verify_signature(secret: str, body: bytes, header: str | None) -> bool:
    return header is not None and hmac.compare_digest(sign(secret, body), header)


def make_event(
    kind: str,
    model: str,
    version: int | None = None,
    alias: str | None = None,
    digest: str | None = None,
    tags: dict[str, str] | None = None,
) -> Event:
    return Event(
        id=uuid.uuid4().hex, type=kind, model=model, version=version, alias=alias, digest=digest, tags=tags, at=now()
    )


class DeliveryFailed(Exception):
    """One attempt failed; ``final`` when retrying cannot help (the receiver refuses the event)."""

    def __init__(self, message: str, final: bool = False) -> None:
        super().__init__(message)
        self.final = final


class _Receiver:
    """One receiver's queue and the thread that works through it (it ends when idle, and is made again)."""

    def __init__(
        self, name: str, deliver: Callable[[Event, Any], None], exiting: threading.Event, retire: Callable[[], bool]
    ) -> None:
        self.name = name
        self.deliver = deliver
        self.exiting = exiting
        self.retire = retire  # under the dispatcher's lock: forget this receiver if its queue is empty
        self.pending: queue.Queue[tuple[Event, Any]] = queue.Queue()
        self.failing = False  # warned once until it answers again: a receiver down for an hour is one line
        self.thread = threading.Thread(target=self._work, name=f"conveyor-events {name}", daemon=True)
        self.thread.start()

    def _work(self) -> None:
        while True:
            try:
                event, payload = self.pending.get(timeout=IDLE_EXIT)
            except queue.Empty:
                if self.retire():
                    return
                continue
            try:
                self._attempts(event, payload)
            finally:
                self.pending.task_done()

    def _attempts(self, event: Event, payload: Any) -> None:
        for attempt, delay in enumerate((0.0, *RETRY_DELAYS), start=1):
            if delay:
                if self.exiting.is_set():
                    log.warning("%s: event %s (%s) not delivered: the process exits", self.name, event.id, event.type)
                    return
                self.exiting.wait(delay)
            try:
                self.deliver(event, payload)
            except DeliveryFailed as exc:
                self._failed(attempt, exc)
                if exc.final:
                    return
            except Exception as exc:  # a follower's own failure must not end its thread
                self._failed(attempt, exc)
            else:
                if self.failing:
                    self.failing = False
                    log.warning("%s: answers again (event %s delivered)", self.name, event.id)
                return
        log.error("%s: giving up on event %s after %d attempts", self.name, event.id, len(RETRY_DELAYS) + 1)

    def _failed(self, attempt: int, exc: Exception) -> None:
        if self.failing:
            log.debug("%s: attempt %d failed: %s", self.name, attempt, exc)
            return
        self.failing = True
        log.warning(
            "%s: attempt %d failed: %s; retried with backoff (%s s), further failures logged at debug level "
            "until it answers",
            self.name,
            attempt,
            exc,
            ", ".join(f"{delay:g}" for delay in RETRY_DELAYS),
        )


class EventDispatcher:
    """Queues each event for every webhook, the local hooks and every follower; never waits for them."""

    def __init__(
        self,
        webhooks: Callable[[], list[tuple[str, str]]],
        hooks_dir: Path | None,
        timeout: float = 5.0,
        followers: Sequence[tuple[str, Follower]] = (),
    ) -> None:
        self._webhooks = webhooks
        self.hooks_dir = hooks_dir
        self.timeout = timeout
        self.followers = list(followers)
        self._receivers: dict[str, _Receiver] = {}
        self._lock = threading.Lock()
        self._exiting = threading.Event()
        _live.add(self)

    def emit(self, event: Event, version: ModelVersion | None = None) -> None:
        body = event.model_dump_json().encode()
        for url, secret in self._webhooks():
            self._queue(f"webhook {url}", self._post, event, (url, secret, body))
        if self.hooks_dir is not None and self.hooks_dir.is_dir():
            self._queue(HOOKS, self._run_hooks, event, body)
        for name, follower in self.followers:
            self._queue(name, follower, event, version)

    def _queue(self, name: str, deliver: Callable[[Event, Any], None], event: Event, payload: Any) -> None:
        with self._lock:  # held while putting, so that an idle receiver retires before or after, never during
            receiver = self._receivers.get(name)
            if receiver is None:
                receiver = self._receivers[name] = _Receiver(name, deliver, self._exiting, lambda: self._retire(name))
            receiver.pending.put((event, payload))

    def _retire(self, name: str) -> bool:
        with self._lock:
            receiver = self._receivers.get(name)
            if receiver is not None and receiver.pending.unfinished_tasks:
                return False
            self._receivers.pop(name, None)
            return True

    def flush(self, timeout: float = 60.0) -> bool:
        """Wait until every queued event was delivered or given up on (True), or ``timeout`` passed."""
        deadline = time.monotonic() + timeout
        with self._lock:
            receivers = list(self._receivers.values())
        for receiver in receivers:
            while receiver.pending.unfinished_tasks:
                if time.monotonic() >= deadline:
                    return False
                time.sleep(0.01)
        return True

    def close(self, grace: float = EXIT_GRACE) -> None:
        """No more retries: let each queue make its remaining first attempts, for at most ``grace`` seconds."""
        self._exiting.set()
        if not self.flush(grace):
            with self._lock:
                waiting = {r.name: r.pending.unfinished_tasks for r in self._receivers.values()}
            for name, count in waiting.items():
                if count and name != HOOKS:
                    log.warning("%s: %d event(s) not delivered: the process exits", name, count)
        with self._lock:
            hooks = self._receivers.get(HOOKS)
        if hooks is not None:
            hooks.pending.join()

    def _post(self, event: Event, delivery: tuple[str, str, bytes]) -> None:
        url, secret, body = delivery
        headers = {
            "Content-Type": "application/json",
            "X-Conveyor-Event": event.type,
            "X-Conveyor-Delivery": event.id,
            SIGNATURE_HEADER: sign(secret, body),
        }
        import httpx  # here, not at import: opening a registry to read it (conveyor monitor) sends nothing

        try:
            response = httpx.post(url, content=body, headers=headers, timeout=self.timeout)
        except httpx.HTTPError as exc:
            raise DeliveryFailed(str(exc) or type(exc).__name__) from None
        if response.status_code >= 300:
            # the receiver refuses this event: retrying will not help (unless it asks for time)
            final = 400 <= response.status_code < 500 and response.status_code not in (408, 429)
            raise DeliveryFailed(f"answered {response.status_code}", final=final)

    def _run_hooks(self, event: Event, body: bytes) -> None:
        assert self.hooks_dir is not None
        for hook in sorted(self.hooks_dir.iterdir()):
            if not hook.is_file() or not os.access(hook, os.X_OK):
                continue
            env = {**os.environ, "CONVEYOR_EVENT": event.type, "CONVEYOR_MODEL": event.model}
            if event.version is not None:
                env["CONVEYOR_VERSION"] = str(event.version)
            try:
                result = subprocess.run([str(hook)], input=body, env=env, timeout=300, capture_output=True)
            except (OSError, subprocess.TimeoutExpired) as exc:
                log.error("hook %s failed: %s", hook.name, exc)
                continue
            if result.returncode != 0:
                log.error("hook %s exited %d: %s", hook.name, result.returncode, result.stderr.decode()[-500:])


_live: weakref.WeakSet[EventDispatcher] = weakref.WeakSet()


@atexit.register
def _close_all() -> None:
    """At exit, every dispatcher of this process finishes its queues (first attempts only, bounded)."""
    deadline = time.monotonic() + EXIT_GRACE
    for dispatcher in list(_live):
        dispatcher.close(max(0.0, deadline - time.monotonic()))
