"""The router's payload log: what every backend was asked and answered, in one place, per version.

A server's own log (``serve --log-payloads``) sees one version; the router sees the service, so
a team that logs at the router gets stable's and canary's traffic side by side without touching
the backends (containers on other hosts included).  Records go to the same layout a server
writes (``DEST/<model>/<version>/payloads-*.jsonl``, the same record, ``serving/payload_record.py``,
through the same writer: sampling, dropped and hashed fields, the size cap, rotation, S3, drops
counted), so ``conveyor monitor`` and the drift trigger read either.  A router record has no
probabilities: the answer is what the client got (``{"positive": true}``, ``{"label": ...}``,
``{"value": ...}``), and the backend that gave it.

Request ids: the router forwards the client's ``X-Request-Id`` or makes one, so the backend's log
and the router's share it, and remembers which backend answered each recent id.  ``POST /feedback``
sent to the router is checked against that version's labels (read once from the backend's v2
metadata), written beside its request in that version's log, and passed on to the backend that
answered it (whose own log, if it keeps one, wants it too; its answer is not waited for).
"""

from __future__ import annotations

import logging
from typing import Any

import aiohttp
import orjson

from conveyor.errors import ClientError, Conflict
from conveyor.router.inputs import classic_items
from conveyor.router.requests import RecentRequests, Served
from conveyor.router.routing import BackendSpec
from conveyor.serving.feedback import check_entry, entry_request_id, feedback_items
from conveyor.serving.payload_record import RequestRecord, record_time
from conveyor.serving.payloads import PayloadLog, PayloadLogConfig
from conveyor.task_kinds import Task

log = logging.getLogger("conveyor.router")

LOGGED_PATHS = ("/predict",)  # v2 answers are tensors: a backend's own log keeps those


class RouterPayloads:
    """One writer per (model, version) seen, fed from the router's answers."""

    def __init__(self, config: PayloadLogConfig, recent: RecentRequests) -> None:
        self.config = config
        self.recent = recent
        self.logs: dict[tuple[str, str], PayloadLog] = {}
        self.labels: dict[tuple[str, str], tuple[list[str], bool]] = {}  # from the backend's v2 metadata

    def _log(self, model: str, version: str) -> PayloadLog:
        key = (model, version)
        if key not in self.logs:
            self.logs[key] = PayloadLog(self.config, model, version, logits=False, classifier=False)
        return self.logs[key]

    def answered(self, served: Served, request_id: str, path: str, seconds: float, body: bytes, answer: bytes) -> None:
        """After a 200 was sent: maybe log the request (sampled; never blocks)."""
        model, version = served.model, served.version
        if path not in LOGGED_PATHS:
            return
        payload = self._log(model, version)
        if not payload.sampled():
            return
        try:
            inputs, outputs = orjson.loads(body), orjson.loads(answer)
        except orjson.JSONDecodeError:
            inputs, outputs = None, None  # an image body, or an answer that is not JSON
        payload.offer_record(
            RequestRecord(
                time=record_time(),
                request_id=request_id,
                model=model,
                version=version,
                backend=served.backend,
                route=path,
                latency_ms=round(seconds * 1000, 3),
                inputs=None if inputs is None else classic_items(inputs),
                outputs=outputs if isinstance(outputs, list) else [outputs],
            )
        )

    async def feedback(
        self, body: bytes, backends: dict[str, BackendSpec], session: aiohttp.ClientSession
    ) -> tuple[dict[str, int], dict[str, list[dict[str, Any]]]]:
        """``POST /feedback`` at a logging router: each entry checked against the labels of the version
        that answered it and written to that version's log; ids the router never saw are dropped.
        Also returns the checked entries by the backend that answered them, to pass on to it."""
        by_version: dict[tuple[str, str], list[tuple[int, Any, str]]] = {}
        dropped = 0
        for index, item in enumerate(feedback_items(body)):
            served = self.recent.get(entry_request_id(index, item))
            if served is None:
                dropped += 1
                continue
            by_version.setdefault((served.model, served.version), []).append((index, item, served.backend))
        checked: dict[tuple[str, str], list[tuple[str, dict[str, Any]]]] = {}
        for key, found in by_version.items():
            labels, regression = await self._labels(key, backends.get(found[0][2]), session)
            checked[key] = [(backend, check_entry(i, item, labels, regression)) for i, item, backend in found]
        accepted = 0
        passed_on: dict[str, list[dict[str, Any]]] = {}
        for (model, version), pairs in checked.items():  # all checked before any is written
            accepted += self._log(model, version).offer_feedback([entry for _, entry in pairs])
            for backend, entry in pairs:
                passed_on.setdefault(backend, []).append(entry)
        total = sum(len(p) for p in checked.values())
        return {"accepted": accepted, "dropped": dropped + total - accepted}, passed_on

    async def _labels(
        self, key: tuple[str, str], backend: BackendSpec | None, session: aiohttp.ClientSession
    ) -> tuple[list[str], bool]:
        if key in self.labels:
            return self.labels[key]
        if backend is None:
            raise Conflict(f"the backend that served {key[0]}:{key[1]} is no longer routed to")
        try:
            async with session.get(f"{backend.url}/v2/models/{key[0]}", timeout=aiohttp.ClientTimeout(10)) as answer:
                metadata = await answer.json(content_type=None)
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            raise ClientError(502, f"cannot read {key[0]}'s labels from backend {backend.name}: {exc}") from None
        parameters = metadata.get("parameters") or {} if isinstance(metadata, dict) else {}
        task = Task.of(parameters.get("task"))
        found = (list(parameters.get("labels") or []), task is not None and task.regression)
        self.labels[key] = found
        return found

    def close(self) -> None:
        for payload in self.logs.values():
            payload.close()
