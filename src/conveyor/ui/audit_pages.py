"""The registry's audit log in the dashboard: who changed what, when and from where, newest first.

The same entries ``conveyor registry audit`` prints, read from the registry's database; filtered
by model and by ``since`` (``7d``, ``12h``, an ISO date) like the command.  A registry reached
over HTTP keeps its log on its server: the page says where to read it.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request

from conveyor.durations import parse_since
from conveyor.registry.audit import AuditLog
from conveyor.registry.refs import check_name

SHOWN = 500  # the newest entries shown; `conveyor registry audit --limit N --json` has them all


def audit_context(registry: Any, request: Request) -> dict[str, Any]:
    model = request.query_params.get("model", "").strip()
    since = request.query_params.get("since", "").strip()
    log: AuditLog | None = getattr(registry, "audit", None)
    entries = []
    if log is not None:
        start = parse_since(since) if since else None
        entries = list(reversed(log.entries(model=check_name(model) if model else None, since=start, limit=SHOWN)))
    return {"entries": entries, "model": model, "since": since, "kept_here": log is not None, "shown": SHOWN}
