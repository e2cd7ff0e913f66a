"""Schemathesis hooks for the fuzz tests (``SCHEMATHESIS_HOOKS=tests.fuzz_hooks``).

Each API has rules JSON Schema cannot state; their documents say them in words.  Requests
generated as schema-valid are made to follow them too (staying within the schema), so that a
refusal of such a request is a real finding:

* model server: a v2 tensor's ``shape`` multiplies out to its number of ``data`` elements, an
  integer tensor's data are JSON integers (JSON Schema counts ``2.0`` as one), and
  the columns of a tabular model hold the same number of rows, and its numbers stay moderate;
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
    if case.path.endswith(("/infer", "/predict")):
        _moderate_numbers(case)
    if case.path.endswith("/infer") and isinstance(case.body, dict):
        tensors = [t for t in case.body.get("inputs") or [] if isinstance(t, dict) and isinstance(t.get("data"), list)]
        rows = min((len(t["data"]) for t in tensors), default=0)
        for tensor in tensors:
            if len(tensors) > 1:  # a tabular model's columns: one row count for all
                tensor["data"] = tensor["data"][:rows]
            tensor["shape"] = [len(tensor["data"])]
            if str(tensor.get("datatype", "")).startswith(("INT", "UINT")):  # JSON Schema's 2.0 is an integer
                tensor["data"] = [int(v) if isinstance(v, float) and v.is_integer() else v for v in tensor["data"]]
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


MODERATE = 1e6


def _moderate_numbers(case: Any) -> None:
    """Numbers of a tabular row kept within +-1e6 (whatever the schema's float32 bounds allow): a model's
    answer to values far outside its training can be NaN, which the server refuses with a 422 as
    documented, and that refusal is not a finding."""

    def moderate(value: Any) -> Any:
        if isinstance(value, float | int) and not isinstance(value, bool) and abs(value) > MODERATE:
            return type(value)(MODERATE if value > 0 else -MODERATE)
        if isinstance(value, list):
            return [moderate(v) for v in value]
        if isinstance(value, dict):
            return {k: v if k in ("shape", "index") else moderate(v) for k, v in value.items()}
        return value

    case.body = moderate(case.body)


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
