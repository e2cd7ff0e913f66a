"""The OpenAPI 3.1 document of the registry server's JSON API, served at ``/openapi.json``.

Names, aliases, versions, digests and tag keys carry the same patterns the server checks, so a
request that fits the document is one the server takes (or answers 404/409 about the registry's
state).  The document is fuzzed (schemathesis) as a standing test.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from conveyor import __version__
from conveyor.registry.records import Alias, ModelVersion, RegisteredModel
from conveyor.registry.refs import ALIAS_RE, FILE_PATH_RE, MAX_FILE_PATH, NAME_RE, TAG_KEY_RE

DIGEST = {"type": "string", "pattern": "^[0-9a-f]{64}$"}
# The rule the server enforces on a new version's file paths (refs.check_file_name)
FILE_PATH = {"type": "string", "pattern": FILE_PATH_RE.pattern, "maxLength": MAX_FILE_PATH}
ERROR = {"$ref": "#/components/schemas/Error"}
REASONS = {
    401: "No token, or an unknown or revoked one",
    403: "A read token asked to change something, or a write token to relax a signing policy (needs admin)",
    404: "No such model, version, alias or blob",
    409: "Refused in the registry's current state (protected alias, aliased version, blob not uploaded)",
    413: "Body over the size limit",
    422: "Invalid name, reference or body",
    503: "The registry's storage is read-only or unreachable (the line says what did not happen)",
    507: "The disk holding the registry is full: nothing was registered or changed",
}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _errors(*codes: int) -> dict[str, Any]:
    # every operation checks its names, versions and digests first (422) and may meet its storage down (503);
    # a change (403 for a read token) may meet a full disk (507)
    every = {401, 422, 503, *codes} | ({507} if 403 in codes else set())
    return {str(code): _json(ERROR, REASONS[code]) for code in sorted(every)}


def _path(name: str, pattern: str, description: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "path",
        "required": True,
        "description": description,
        "schema": {"type": "string", "pattern": pattern},
    }


NAME = _path("name", NAME_RE.pattern, "Model name")
VERSION = _path("version", "^[1-9][0-9]{0,8}$", "Version number: 1, 2, 3, ...")
ALIAS = _path("alias", ALIAS_RE.pattern, "Alias, e.g. production")
BLOB = {**_path("digest", DIGEST["pattern"], "sha256 of the file"), "schema": DIGEST}
TAGS = {"type": "object", "propertyNames": {"pattern": TAG_KEY_RE.pattern}, "additionalProperties": {"type": "string"}}


def _new_version() -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["files"],
        "properties": {
            "description": {"type": "string"},
            "files": {
                "type": "array",
                "minItems": 1,
                "items": {
                    "type": "object",
                    "required": ["path", "sha256", "size"],
                    "properties": {"path": FILE_PATH, "sha256": DIGEST, "size": {"type": "integer", "minimum": 0}},
                },
                "description": "Each path once; every blob uploaded first (else 409).",
            },
            "framework": {"type": ["string", "null"]},
            "framework_version": {"type": ["string", "null"]},
            "tags": TAGS,
            "properties": TAGS,
            "lineage": {
                "type": "object",
                "properties": {
                    "source": {"type": ["string", "null"]},
                    "git_commit": {"type": ["string", "null"]},
                    "run_id": {"type": ["string", "null"]},
                    "optimized_from": {"type": ["string", "null"]},
                    "derived_from": {"type": ["string", "null"]},
                    "metrics": {"type": "object", "additionalProperties": {"type": "number"}},
                    "approvals": {
                        "type": "array",
                        "items": {"type": "object", "additionalProperties": {"type": ["string", "boolean"]}},
                    },
                },
            },
            "aliases": {"type": "array", "items": {"type": "string", "pattern": ALIAS_RE.pattern}},
            "model_description": {"type": ["string", "null"]},
        },
    }


@lru_cache(maxsize=1)
def registry_openapi() -> dict[str, Any]:
    ref = "#/components/schemas/{model}"
    schemas: dict[str, Any] = {
        "Error": {"type": "object", "properties": {"error": {"type": "string"}}, "required": ["error"]},
        "NewVersion": _new_version(),
    }
    for record in (ModelVersion, RegisteredModel, Alias):
        schema = record.model_json_schema(ref_template=ref)
        schemas.update(schema.pop("$defs", {}))
        schemas[schema["title"]] = schema
    version = {"$ref": "#/components/schemas/ModelVersion"}
    versions = {"type": "array", "items": version}
    model = {"$ref": "#/components/schemas/RegisteredModel"}
    tag_change = {
        "type": "object",
        "properties": {
            "set": TAGS,
            "unset": {"type": "array", "items": {"type": "string", "pattern": TAG_KEY_RE.pattern}},
        },
    }
    alias_move = {
        "type": "object",
        "required": ["version"],
        "properties": {
            "version": {"type": "integer", "minimum": 1, "maximum": 999_999_999},
            "force": {"type": "boolean"},
            "protect": {"type": ["boolean", "null"]},
        },
    }
    tags_answer = _json({"type": "object", "properties": {"tags": {"type": "object"}}}, "The tags now")
    m, v = [NAME], [NAME, VERSION]
    flag = {"type": "string", "enum": ["1", "true", "0", "false"]}
    force = {"name": "force", "in": "query", "required": False, "schema": flag}
    archived = {**force, "name": "archived"}
    base = "/api/v1"
    paths: dict[str, Any] = {
        "/healthz": {
            "get": {"summary": "Liveness", "security": [], "responses": {"200": _json({"type": "object"}, "Up")}}
        },
        f"{base}/models": {
            "get": {
                "summary": "Models",
                "responses": {"200": _json({"type": "array", "items": model}, "OK"), **_errors()},
            }
        },
        f"{base}/models/{{name}}": {
            "get": {"summary": "A model", "parameters": m, "responses": {"200": _json(model, "OK"), **_errors(404)}}
        },
        f"{base}/models/{{name}}/versions": {
            "get": {
                "summary": "A model's versions",
                "parameters": [*m, archived],
                "responses": {"200": _json(versions, "OK"), **_errors(404, 422)},
            },
            "post": {
                "summary": "Create a version from uploaded blobs",
                "parameters": m,
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/NewVersion"}}},
                },
                "responses": {"201": _json(version, "Created"), **_errors(403, 409, 422)},
            },
        },
        f"{base}/models/{{name}}/versions/{{version}}": {
            "get": {
                "summary": "A version",
                "parameters": v,
                "responses": {"200": _json(version, "OK"), **_errors(404)},
            },
            "delete": {
                "summary": "Delete a version",
                "parameters": v,
                "responses": {"200": _json(version, "Deleted"), **_errors(403, 404, 409)},
            },
        },
        f"{base}/models/{{name}}/versions/{{version}}/archive": {
            "post": {
                "summary": "Archive a version",
                "parameters": v,
                "responses": {"200": _json(version, "Archived"), **_errors(403, 404, 409)},
            }
        },
        f"{base}/models/{{name}}/tags": {
            "patch": {
                "summary": "Set and unset a model's tags",
                "parameters": m,
                "requestBody": {"required": True, "content": {"application/json": {"schema": tag_change}}},
                "responses": {"200": tags_answer, **_errors(403, 404, 422)},
            }
        },
        f"{base}/models/{{name}}/versions/{{version}}/tags": {
            "patch": {
                "summary": "Set and unset a version's tags",
                "parameters": v,
                "requestBody": {"required": True, "content": {"application/json": {"schema": tag_change}}},
                "responses": {"200": tags_answer, **_errors(403, 404, 422)},
            }
        },
        f"{base}/models/{{name}}/aliases/{{alias}}": {
            "put": {
                "summary": "Point an alias at a version",
                "parameters": [NAME, ALIAS],
                "requestBody": {"required": True, "content": {"application/json": {"schema": alias_move}}},
                "responses": {
                    "200": _json({"$ref": "#/components/schemas/Alias"}, "Moved"),
                    **_errors(403, 404, 409, 422),
                },
            },
            "delete": {
                "summary": "Remove an alias",
                "parameters": [NAME, ALIAS, force],
                "responses": {"200": _json({"type": "object"}, "Removed"), **_errors(403, 404, 409, 422)},
            },
        },
        f"{base}/resolve": {
            "get": {
                "summary": "Resolve name, name:version or name@alias",
                "parameters": [
                    {
                        "name": "ref",
                        "in": "query",
                        "required": True,
                        "schema": {
                            "type": "string",
                            "pattern": NAME_RE.pattern[:-1] + r"(:[1-9][0-9]{0,8}|@[A-Za-z][A-Za-z0-9_-]{0,63})?$",
                        },
                    }
                ],
                "responses": {"200": _json(version, "The version"), **_errors(404, 422)},
            }
        },
        f"{base}/blobs/{{digest}}": {
            "get": {
                "summary": "Download a blob",
                "parameters": [BLOB],
                "responses": {
                    "200": {"description": "The bytes", "content": {"application/octet-stream": {}}},
                    **_errors(404),
                },
            },
            "head": {
                "summary": "Whether a blob is stored",
                "parameters": [BLOB],
                "responses": {
                    "200": {"description": "Stored"},
                    "404": {"description": "Not stored"},
                    "401": {"description": REASONS[401]},
                    "422": {"description": REASONS[422]},
                },
            },
            "put": {
                "summary": "Upload a blob (hashed on arrival; refused unless it matches the digest)",
                "parameters": [BLOB],
                "requestBody": {
                    "required": True,
                    "content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}},
                },
                "responses": {"201": _json({"type": "object"}, "Stored"), **_errors(403, 422)},
            },
        },
    }
    return {
        "openapi": "3.1.0",
        "info": {"title": "Conveyor registry", "version": __version__},
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{"bearer": []}],
    }
