"""What the server checks share: reading an answer (its JSON, a short preview, a schema error said
plainly) and calling the Open Inference Protocol v2 for the contract's model."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
from jsonschema.exceptions import ValidationError as SchemaError

from conveyor.verify.checks import CheckFailed, Context, SkipCheck
from conveyor.verify.json_types import json_type


def json_path(path: Iterator[Any] | Any) -> str:
    text = "$"
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else f".{part}"
    return text


def _short(value: Any, limit: int = 80) -> str:
    text = json.dumps(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def describe_schema_error(error: SchemaError) -> str:
    """``$.positive: expected boolean, got string "false"`` rather than a validator dump."""
    where = json_path(error.absolute_path)
    if error.validator == "type":
        expected = error.validator_value
        expected = " or ".join(expected) if isinstance(expected, list) else expected
        return f"{where}: expected {expected}, got {json_type(error.instance)} {_short(error.instance)}"
    if error.validator == "required":
        return f"{where}: {error.message}"
    return f"{where}: {error.message}"


def _body_preview(response: httpx.Response) -> str:
    text = response.text.strip().replace("\n", " ")
    return text[:120] + ("..." if len(text) > 120 else "")


def _json_body(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        kind = response.headers.get("content-type", "no content type")
        raise CheckFailed(f"answer is not JSON ({kind}): {_body_preview(response)}") from None


def _v2_base(ctx: Context) -> str:
    settings = ctx.contract.v2
    if settings is None:
        raise SkipCheck("no v2 model named in the contract (v2: {model: NAME})")
    base = f"/v2/models/{settings.model}"
    return base + (f"/versions/{settings.version}" if settings.version else "")


V2_KINDS = {"BOOL": (bool,), "BYTES": (str,), "FP16": (int, float), "FP32": (int, float), "FP64": (int, float)}


def _v2_infer(
    ctx: Context, texts: list[str], outputs: list[str] | None = None, inputs: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    base = _v2_base(ctx)  # skips the check when no v2 model is known
    settings = ctx.contract.v2
    assert settings is not None
    request: dict[str, Any] = {
        "inputs": inputs or [{"name": settings.text_input, "shape": [len(texts)], "datatype": "BYTES", "data": texts}]
    }
    if outputs:
        request["outputs"] = [{"name": name} for name in outputs]
    response = ctx.client.post(ctx.url(base + "/infer"), json=request)
    if response.status_code != 200:
        raise CheckFailed(f"v2 infer answered HTTP {response.status_code}: {_body_preview(response)}")
    body = _json_body(response)
    if not isinstance(body, dict) or not isinstance(body.get("outputs"), list) or not body["outputs"]:
        raise CheckFailed(f"v2 infer answer has no outputs: {_short(body)}")
    return body
