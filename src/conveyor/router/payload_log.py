"""The router's payload log: what every backend was asked and answered, in one place, per version.

A server's own log (``serve --log-payloads``) sees one version; the router sees the service, so
a team that logs at the router gets stable's and canary's traffic side by side without touching
the backends (containers on other hosts included).  Records go to the same layout a server
writes (``DEST/<model>/<version>/payloads-*.jsonl``, the same record, ``serving/payload_record.py``,
through the same writer: sampling, dropped and hashed fields, the size cap, rotation, S3, drops
counted), so ``conveyor monitor`` and the drift trigger read either.  A router record has no
probabilities: the answer is what the client got (``{"positive": true}``, ``{"label": ...}``,
``{"value": ...}``), and the backend that gave it.  A generation (``/v1/chat/completions``,
``/v1/completions``, streamed or not) is logged as its prompt and answer (``generative/payloads.py``).

Request ids: the router forwards the client's ``X-Request-Id`` or makes one, so the backend's log
and the router's share it, and remembers which backend answered each recent id.  Each version's
log indexes every answered ``/predict`` (``serving/answered.py``), sampled or not.  ``POST
/feedback`` sent to the router means what it means at a server (accepted, duplicate, unknown),
is checked against that version's labels (read once from the backend's v2 metadata), written
beside its request in that version's log, and the accepted entries are passed on to the backend
that answered (whose own log, if it keeps one, wants them too; its answer is not waited for).
"""

from __future__ import annotations

import logging
from typing import Any

import aiohttp
import orjson

from conveyor.errors import ClientError, Conflict
from conveyor.generative.payloads import GENERATION_ROUTES, generation_items, unsampled
from conveyor.router.inputs import classic_items
from conveyor.router.requests import RecentRequests, Served, model_and_version
from conveyor.router.routing import BackendSpec
from conveyor.serving.feedback import Checked, check_entry, entry_request_id, feedback_items, given_field, judge, locate
from conveyor.serving.payload_record import RequestRecord, record_time
from conveyor.serving.payloads import PayloadLog, PayloadLogConfig
from conveyor.task_kinds import Task

log = logging.getLogger("conveyor.router")

LOGGED_PATHS = ("/predict", *GENERATION_ROUTES)  # v2 answers are tensors: a backend's own log keeps those


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
        generated = generation_items(body, answer) if path in GENERATION_ROUTES else None
        if not payload.sampled():
            if generated is not None:
                payload.offer_unsampled(request_id, [unsampled(answer) for answer in generated[1]])
                return
            try:
                answers = orjson.loads(answer)
            except orjson.JSONDecodeError:
                answers = None
            payload.offer_unsampled(request_id, answers if isinstance(answers, list) else [answers])
            return
        inputs: list[Any] | None
        outputs: Any
        if path in GENERATION_ROUTES:  # a chat or completion, whole or streamed: its prompt and answer
            if generated is None:
                return
            inputs, outputs = generated
        else:
            try:
                request, outputs = orjson.loads(body), orjson.loads(answer)
            except orjson.JSONDecodeError:
                request, outputs = None, None  # an image body, or an answer that is not JSON
            inputs = None if request is None else classic_items(request)
        payload.offer_record(
            RequestRecord(
                time=record_time(),
                request_id=request_id,
                model=model,
                version=version,
                backend=served.backend,
                route=path,
                latency_ms=round(seconds * 1000, 3),
                inputs=inputs,
                outputs=outputs if isinstance(outputs, list) else [outputs],
            )
        )

    async def feedback(
        self, body: bytes, backends: dict[str, BackendSpec], session: aiohttp.ClientSession
    ) -> tuple[dict[str, Any], dict[str, list[dict[str, Any]]]]:
        """``POST /feedback`` at a logging router, with a server's meaning (``serving/feedback.py``):
        each entry checked against the labels of the version that answered it and written to that
        version's log; accepted, duplicate or unknown per entry.  Also returns the accepted entries
        by the backend that answered them, to pass on to it."""
        items = feedback_items(body)
        request_ids = [entry_request_id(index, item) for index, item in enumerate(items)]
        await locate(request_ids, self._find, self._refresh)
        checked: Checked = []
        for index, (item, request_id) in enumerate(zip(items, request_ids, strict=True)):
            log = self._find(request_id)
            if log is None:  # unknown: no version to check its labels against
                checked.append((index, {"request_id": request_id}, "labels"))
                continue
            key = (log.model, log.version)
            labels, regression = await self._labels(key, self._backend_of(request_id, key, backends), session)
            checked.append((index, check_entry(index, item, labels, regression), given_field(item)))
        answer = judge(checked, self._find)
        passed_on: dict[str, list[dict[str, Any]]] = {}
        for (_, entry, _), result in zip(checked, answer["results"], strict=True):
            log = self._find(entry["request_id"])
            backend = self._backend_of(entry["request_id"], (log.model, log.version), backends) if log else None
            if result["result"] == "accepted" and backend is not None:
                passed_on.setdefault(backend.name, []).append(entry)
        return answer, passed_on

    def _find(self, request_id: str) -> PayloadLog | None:
        """The version log that knows ``request_id``: the version the router remembers, else any."""
        served = self.recent.get(request_id)
        if served is not None:
            log = self.logs.get((served.model, served.version))
            if log is not None and log.index.items(request_id) is not None:
                return log
        return next((log for log in self.logs.values() if log.index.items(request_id) is not None), None)

    def _refresh(self) -> None:
        for log in list(self.logs.values()):
            log.index.refresh()

    def _backend_of(
        self, request_id: str, key: tuple[str, str], backends: dict[str, BackendSpec]
    ) -> BackendSpec | None:
        """The backend that answered (remembered), else one routed to that version now."""
        served = self.recent.get(request_id)
        if served is not None and served.backend in backends:
            return backends[served.backend]
        service = self.recent.service
        return next((b for b in backends.values() if model_and_version(b, service) == key), None)

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
