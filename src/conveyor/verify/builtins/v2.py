"""Built-in checks of the Open Inference Protocol v2: health, readiness, metadata, typed inference
and a bad request, against the model the contract names (``v2: {model: NAME}``)."""

from __future__ import annotations

import math

from conveyor.verify.builtins.responses import V2_KINDS, _body_preview, _json_body, _short, _v2_base, _v2_infer
from conveyor.verify.checks import CheckFailed, Context, check
from conveyor.verify.json_types import json_type


@check("v2.live", "v2", "GET /v2/health/live")
def v2_live(ctx: Context) -> str:
    _v2_base(ctx)
    response = ctx.client.get(ctx.url("/v2/health/live"))
    if response.status_code != 200:
        raise CheckFailed(f"/v2/health/live answered {response.status_code}")
    return "live"


@check("v2.ready", "v2", "server and model readiness")
def v2_ready(ctx: Context) -> str:
    base = _v2_base(ctx)
    for path in ("/v2/health/ready", base + "/ready"):
        response = ctx.client.get(ctx.url(path))
        if response.status_code != 200:
            raise CheckFailed(f"{path} answered {response.status_code}: {_body_preview(response)}")
    return "server and model ready"


@check("v2.metadata", "v2", "model metadata names inputs and outputs")
def v2_metadata(ctx: Context) -> str:
    response = ctx.client.get(ctx.url(_v2_base(ctx)))
    if response.status_code != 200:
        raise CheckFailed(f"model metadata answered {response.status_code}: {_body_preview(response)}")
    body = _json_body(response)
    missing = [key for key in ("name", "inputs", "outputs") if key not in body]
    if missing:
        raise CheckFailed(f"model metadata lacks {missing}: {_short(body)}")
    inputs = [i.get("name") for i in body["inputs"]]
    outputs = [o.get("name") for o in body["outputs"]]
    return f"{body['name']}: inputs {inputs}, outputs {outputs}"


@check("v2.infer", "v2", "v2 inference answers typed tensors")
def v2_infer_typed(ctx: Context) -> str:
    body = _v2_infer(ctx, ctx.contract.sample_input, inputs=ctx.contract.v2.inputs if ctx.contract.v2 else None)
    described = []
    for index, output in enumerate(body["outputs"]):
        where = f"$.outputs[{index}]"
        for key in ("name", "shape", "datatype", "data"):
            if key not in output:
                raise CheckFailed(f"{where}: missing {key!r}")
        shape, data, datatype = output["shape"], output["data"], output["datatype"]
        if not isinstance(shape, list) or not all(isinstance(d, int) and d >= 0 for d in shape):
            raise CheckFailed(f"{where}.shape: expected a list of non-negative integers, got {_short(shape)}")
        if len(data) != math.prod(shape):
            raise CheckFailed(f"{where}.data: shape {shape} needs {math.prod(shape)} values, got {len(data)}")
        kinds = V2_KINDS.get(datatype, (int,))
        for position, value in enumerate(data):
            if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):
                raise CheckFailed(
                    f"{where}.data[{position}]: {datatype} expects {'/'.join(k.__name__ for k in kinds)}, "
                    f"got {json_type(value)} {_short(value)}"
                )
        described.append(f"{output['name']} {datatype}{shape}")
    return ", ".join(described)


@check("v2.bad_request", "v2", "a bad v2 request gets a 4xx JSON error")
def v2_bad_request(ctx: Context) -> str:
    response = ctx.client.post(ctx.url(_v2_base(ctx) + "/infer"), json={"inputs": []})
    if not 400 <= response.status_code < 500:
        raise CheckFailed(f"an inference request without inputs answered {response.status_code}, expected a 4xx")
    try:
        message = response.json().get("error")
    except (ValueError, AttributeError):
        message = None
    if not message:
        raise CheckFailed(f"{response.status_code} without a JSON error message: {_body_preview(response)}")
    return f"{response.status_code}: {message}"
