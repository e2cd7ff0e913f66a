"""Registry events: signed webhooks with retries, and local hooks.

Webhooks get a JSON POST with ``X-Conveyor-Event``, ``X-Conveyor-Delivery``
and ``X-Conveyor-Signature: sha256=<hex HMAC-SHA256 of the body with the
webhook's secret>``; receivers recompute the HMAC and compare in constant
time (see ``verify_signature``).  Local hooks are executables in
``$CONVEYOR_HOME/hooks/``: each runs with the event JSON on stdin, so a
pipeline can react to a new version without polling.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import subprocess
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import httpx

from conveyor.registry.records import Event
from conveyor.registry.schema import now

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Conveyor-Signature"
RETRY_DELAYS = (0.5, 1.0, 2.0)


def sign(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verify_signature(secret: str, body: bytes, header: str | None) -> bool:
    return header is not None and hmac.compare_digest(sign(secret, body), header)


def make_event(
    kind: str, model: str, version: int | None = None, alias: str | None = None, digest: str | None = None
) -> Event:
    return Event(id=uuid.uuid4().hex, type=kind, model=model, version=version, alias=alias, digest=digest, at=now())


class EventDispatcher:
    """Delivers each event to every webhook (with retries) and every local hook."""

    def __init__(
        self, webhooks: Callable[[], list[tuple[str, str]]], hooks_dir: Path | None, timeout: float = 5.0
    ) -> None:
        self._webhooks = webhooks
        self.hooks_dir = hooks_dir
        self.timeout = timeout

    def emit(self, event: Event) -> None:
        body = event.model_dump_json().encode()
        for url, secret in self._webhooks():
            self._deliver(url, secret, event, body)
        self._run_hooks(event, body)

    def _deliver(self, url: str, secret: str, event: Event, body: bytes) -> bool:
        headers = {
            "Content-Type": "application/json",
            "X-Conveyor-Event": event.type,
            "X-Conveyor-Delivery": event.id,
            SIGNATURE_HEADER: sign(secret, body),
        }
        for attempt, delay in enumerate((0.0, *RETRY_DELAYS)):
            if delay:
                time.sleep(delay)
            try:
                response = httpx.post(url, content=body, headers=headers, timeout=self.timeout)
            except httpx.HTTPError as exc:
                log.warning("webhook %s: attempt %d failed: %s", url, attempt + 1, exc)
                continue
            if response.status_code < 300:
                return True
            log.warning("webhook %s: attempt %d answered %d", url, attempt + 1, response.status_code)
            if 400 <= response.status_code < 500 and response.status_code not in (408, 429):
                return False  # the receiver refuses this event: retrying will not help
        log.error("webhook %s: giving up on event %s after %d attempts", url, event.id, len(RETRY_DELAYS) + 1)
        return False

    def _run_hooks(self, event: Event, body: bytes) -> None:
        if self.hooks_dir is None or not self.hooks_dir.is_dir():
            return
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
