"""The OpenAPI 3.1 document of the router's admin API (``/_conveyor/``), served at ``/_conveyor/openapi.json``.

The routing table's schema comes from the model the router validates with; the rules JSON Schema
cannot state are said in words: weights add up to 100, backend names are unique, ``mirror_to``
names a backend.  Every operation but the liveness probe needs the admin token (``router/admin.py``).
The document is fuzzed (schemathesis) as a standing test.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from conveyor import __version__
from conveyor.router.routing import RouteTable

ERROR = {"$ref": "#/components/schemas/Error"}
URL_PATTERN = r"^https?://[^/]+/?$"


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


@lru_cache(maxsize=1)
def admin_openapi() -> dict[str, Any]:
    table = RouteTable.model_json_schema(ref_template="#/components/schemas/{model}")
    schemas: dict[str, Any] = table.pop("$defs", {})
    schemas["BackendSpec"]["properties"]["url"]["pattern"] = URL_PATTERN
    table["description"] = (
        "Backend weights add up to 100 (or there are no backends); backend names are unique; "
        "mirror_to names a backend and mirror_percent > 0 needs it."
    )
    schemas["RouteTable"] = table
    schemas["Error"] = {"type": "object", "properties": {"error": {"type": "string"}}, "required": ["error"]}
    routes_answer = _json({"type": "object", "required": ["backends", "instance"]}, "The table in force, with health")
    error = _json(ERROR, "")
    refused = {**error, "description": "The admin token was not sent, or not this router's"}
    guarded: dict[str, Any] = {"security": [{"bearer": []}]}
    return {
        "openapi": "3.1.0",
        "info": {"title": "Conveyor router admin API", "version": __version__},
        "paths": {
            "/_conveyor/health": {
                "get": {"summary": "Liveness", "responses": {"200": _json({"type": "object"}, "Up")}}
            },
            "/_conveyor/stats": {
                "get": {
                    "summary": "Per-backend traffic counters (what the rollout analysis reads)",
                    **guarded,
                    "responses": {
                        "200": _json({"type": "object", "required": ["instance", "traffic"]}, "Counters"),
                        "401": refused,
                    },
                }
            },
            "/_conveyor/routes": {
                "get": {
                    "summary": "The routing table (backend URLs without credentials)",
                    **guarded,
                    "responses": {"200": routes_answer, "401": refused},
                },
                "put": {
                    "summary": "Replace the routing table (atomically; in-flight requests are not disturbed)",
                    **guarded,
                    "requestBody": {
                        "required": True,
                        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/RouteTable"}}},
                    },
                    "responses": {
                        "200": routes_answer,
                        "401": refused,
                        "413": {**error, "description": "Table over 1 MB"},
                        "422": {**error, "description": "An invalid table, with the fields named"},
                    },
                },
            },
        },
        "components": {"schemas": schemas, "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
    }
