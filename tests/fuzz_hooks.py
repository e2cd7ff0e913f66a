"""Schemathesis hooks for the fuzz tests (``SCHEMATHESIS_HOOKS=tests.fuzz_hooks``).

Each API has rules JSON Schema cannot state; their documents say them in words.  Requests
generated as schema-valid are made to follow them too (staying within the schema), so that a
refusal of such a request is a real finding:

* model server: a v2 tensor's ``shape`` multiplies out to its number of ``data`` elements;
* registry: a blob's path digest is the sha256 of its bytes; a version names each file once;
* router: backend weights add up to 100, names are unique, ``mirror_to`` names a backend.

Whatever the mode, every backend URL sent to the router points at a closed port on 127.0.0.1:
the router health-checks its backends, and tests send traffic to this machine only.
"""

from __future__ import annotations

import hashlib
from typing import Any

import schemathesis
from schemathesis import GenerationMode

LOOPBACK_BACKEND = "http://127.0.0.1:9"  # the discard port: nothing listens, connections are refused


@schemathesis.hook
def map_case(ctx: Any, case: Any) -> Any:
    if case.method.upper() == "PUT" and case.path.endswith("/_conveyor/routes"):
        _loopback_only(case.body)
    if case.meta is None or case.meta.generation.mode != GenerationMode.POSITIVE:
        return case
    if case.path.endswith("/infer") and isinstance(case.body, dict):
        for tensor in case.body.get("inputs") or []:
            if isinstance(tensor, dict) and isinstance(tensor.get("data"), list):
                tensor["shape"] = [len(tensor["data"])]
    elif case.method.upper() == "PUT" and case.path.endswith("/blobs/{digest}"):
        body = case.body if isinstance(case.body, bytes) else str(case.body or "").encode()
        case.body = body
        case.path_parameters = {**(case.path_parameters or {}), "digest": hashlib.sha256(body).hexdigest()}
    elif case.method.upper() == "POST" and case.path.endswith("/versions") and isinstance(case.body, dict):
        files = case.body.get("files")
        if isinstance(files, list):
            seen: dict[str, Any] = {}
            for entry in files:
                seen.setdefault(entry.get("path"), entry)
            case.body["files"] = list(seen.values())
    elif case.method.upper() == "PUT" and case.path.endswith("/_conveyor/routes") and isinstance(case.body, dict):
        _consistent_table(case.body)
    return case


def _loopback_only(body: Any) -> None:
    if not isinstance(body, dict) or not isinstance(body.get("backends"), list):
        return
    for backend in body["backends"]:
        if isinstance(backend, dict) and isinstance(backend.get("url"), str) and backend["url"][:4].lower() == "http":
            backend["url"] = LOOPBACK_BACKEND


def _consistent_table(table: dict[str, Any]) -> None:
    backends = table.get("backends") or []
    unique: dict[str, dict[str, Any]] = {}
    for backend in backends:
        unique.setdefault(backend["name"], backend)
    backends = list(unique.values())
    for index, backend in enumerate(backends):
        backend["weight"] = 100.0 if index == 0 else 0.0
    table["backends"] = backends
    if table.get("mirror_to") not in unique:
        table["mirror_to"] = None
        table["mirror_percent"] = 0.0
