"""Which backend answered each recent request: the router's memory of request ids.

The router forwards the client's ``X-Request-Id`` or makes one (so a backend's payload log and
the router's share it) and remembers, for a bounded number of recent ids, which backend and
version answered.  ``POST /feedback`` through the router then reaches the backend (and the
version's log) that served the request it names, even mid-canary when the split would send it
anywhere.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import orjson

from conveyor.router.routing import BackendSpec

REMEMBERED = 100_000  # recent request ids kept (about 100 bytes each)


@dataclass(frozen=True)
class Served:
    backend: str
    model: str
    version: str


def model_and_version(backend: BackendSpec, service: str) -> tuple[str, str]:
    """``sentiment:2`` -> (sentiment, 2); a bare label is a version of the service's model."""
    label = backend.version or backend.name
    if ":" in label:
        model, _, version = label.partition(":")
        return model, version
    return service, label


class RecentRequests:
    """Which backend answered each recent request id (bounded): feedback goes where its request went."""

    def __init__(self, service: str, size: int = REMEMBERED) -> None:
        self.service = service
        self.size = size
        self.served: OrderedDict[str, Served] = OrderedDict()

    def remember(self, request_id: str, backend: BackendSpec) -> Served:
        model, version = model_and_version(backend, self.service)
        served = self.served[request_id] = Served(backend.name, model, version)
        self.served.move_to_end(request_id)
        if len(self.served) > self.size:
            self.served.popitem(last=False)
        return served

    def get(self, request_id: Any) -> Served | None:
        return self.served.get(request_id) if isinstance(request_id, str) else None

    def backend_of(self, body: bytes) -> str | None:
        """The backend that answered the first request a feedback body names (to pin it there)."""
        try:
            entries = orjson.loads(body)
        except orjson.JSONDecodeError:
            return None
        first = entries[0] if isinstance(entries, list) and entries else entries
        served = self.get(first.get("request_id")) if isinstance(first, dict) else None
        return served.backend if served is not None else None
