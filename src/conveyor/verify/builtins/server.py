"""Built-in checks of a running model server, one group per layer a request crosses.

1. http      the client's request with a JSON body gets an HTTP answer
2. route     the port and the endpoint exist and route
3. parse     the application parses the JSON payload
4. predict   the runtime consumes the text and produces a (correct) prediction
5. response  the answer is HTTP 200 with JSON whose values have the right types
plus errors (bad input gets a 4xx JSON error) and latency (p95 under load); the Open Inference
Protocol v2: ``v2.py``.
"""

from __future__ import annotations

import json
import math
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
from jsonschema import Draft202012Validator

from conveyor.verify.builtins.responses import (
    _body_preview,
    _json_body,
    _short,
    _v2_infer,
    describe_schema_error,
)
from conveyor.verify.checks import Check, CheckFailed, Context, SkipCheck, check, check_family
from conveyor.verify.contract import Contract, GoldenCase, InvalidCase
from conveyor.verify.json_types import json_type


def _sample(ctx: Context) -> httpx.Response:
    return ctx.post_json(ctx.contract.sample_input)


# ---- 1. http ---------------------------------------------------------------------------------


@check("http.reachable", "http", "a POST with a JSON body gets an HTTP answer")
def http_reachable(ctx: Context) -> str:
    started = time.perf_counter()
    response = _sample(ctx)
    return f"{response.http_version} {response.status_code} in {1000 * (time.perf_counter() - started):.0f} ms"


# ---- 2. route --------------------------------------------------------------------------------


@check("route.endpoint", "route", "the endpoint exists for the method")
def route_endpoint(ctx: Context) -> str:
    response = _sample(ctx)
    if response.status_code == 404:
        raise CheckFailed(f"{ctx.contract.method} {ctx.contract.endpoint} answered 404: the route does not exist")
    if response.status_code == 405:
        raise CheckFailed(f"{ctx.contract.endpoint} does not accept {ctx.contract.method} (405)")
    return f"{ctx.contract.method} {ctx.contract.endpoint} routes (HTTP {response.status_code})"


# ---- 3. parse --------------------------------------------------------------------------------


@check("parse.json_body", "parse", "a valid JSON body is accepted")
def parse_json_body(ctx: Context) -> str:
    response = _sample(ctx)
    if response.status_code in (400, 415, 422):
        raise CheckFailed(
            f"a valid JSON body {_short(ctx.contract.sample_input)} was refused with {response.status_code}: "
            f"{_body_preview(response)}"
        )
    if response.status_code >= 500:
        raise CheckFailed(f"parsing a valid JSON body failed on the server: {response.status_code}")
    return f"{_short(ctx.contract.sample_input)} accepted"


@check("parse.charset", "parse", "application/json; charset=utf-8 is accepted")
def parse_charset(ctx: Context) -> str:
    body = json.dumps(ctx.contract.sample_input).encode()
    response = ctx.client.request(
        ctx.contract.method,
        ctx.url(ctx.contract.endpoint),
        content=body,
        headers={"Content-Type": "application/json; charset=utf-8"},
    )
    if response.status_code >= 400:
        raise CheckFailed(f"Content-Type 'application/json; charset=utf-8' refused with {response.status_code}")
    return "charset parameter accepted"


# ---- 4. predict ------------------------------------------------------------------------------


@check("predict.answers", "predict", "the model produces a prediction")
def predict_answers(ctx: Context) -> str:
    response = _sample(ctx)
    if response.status_code >= 500:
        raise CheckFailed(f"the model failed: HTTP {response.status_code}: {_body_preview(response)}")
    body = _json_body(response)
    if body in (None, {}, [], ""):
        raise CheckFailed(f"empty prediction: {_short(body)}")
    return f"prediction {_short(body)}"


@check("predict.deterministic", "predict", "the same input gives the same answer")
def predict_deterministic(ctx: Context) -> str:
    first, second = _json_body(_sample(ctx)), _json_body(_sample(ctx))
    if first != second:
        raise CheckFailed(f"the same input answered {_short(first)} then {_short(second)}")
    return "same input, same answer"


@check("predict.batch_consistent", "predict", "N texts at once answer as N single requests")
def predict_batch_consistent(ctx: Context) -> str:
    texts = [*ctx.contract.sample_input, *(g.input[0] for g in ctx.contract.golden if g.protocol == "classic")][:8]
    if len(texts) < 2:
        made_for_task = ctx.contract.v2 is not None and ctx.contract.v2.inputs is not None  # records, images
        texts = [texts[0], texts[0] if made_for_task or not isinstance(texts[0], str) else texts[0] + " indeed"]
    response = ctx.post_json(texts)
    if response.status_code != 200:
        raise SkipCheck(f"the endpoint takes one text per request ({len(texts)} texts: HTTP {response.status_code})")
    together = _json_body(response)
    if not isinstance(together, list) or len(together) != len(texts):
        raise CheckFailed(f"{len(texts)} texts answered {_short(together)}, not a list of {len(texts)} answers")
    alone = [_json_body(ctx.post_json([t])) for t in texts]
    mismatched = [i for i, (a, b) in enumerate(zip(together, alone, strict=True)) if a != b]
    if mismatched:
        i = mismatched[0]
        raise CheckFailed(f"text {i} answered {_short(together[i])} in a batch but {_short(alone[i])} alone")
    return f"{len(texts)} texts in one request match {len(texts)} single requests"


def _field(value: Any, path: str | None) -> Any:
    if not path:
        return value
    for part in path.split("."):
        if isinstance(value, list) and part.lstrip("-").isdigit():
            index = int(part)
            if not -len(value) <= index < len(value):
                raise CheckFailed(f"field {path!r}: index {index} out of range in {_short(value)}")
            value = value[index]
        elif isinstance(value, dict) and part in value:
            value = value[part]
        else:
            raise CheckFailed(f"field {path!r}: no {part!r} in {_short(value)}")
    return value


def _v2_value(ctx: Context, case: GoldenCase) -> Any:
    settings = ctx.contract.v2
    if settings is None:
        raise SkipCheck("a v2 golden case needs the v2 section (model name) in the contract")
    body = _v2_infer(ctx, case.input, [case.output or ""])
    output = body["outputs"][0]
    data = output.get("data", [])
    if not -len(data) <= case.index < len(data):
        raise CheckFailed(f"output {case.output!r} has {len(data)} values, no index {case.index}")
    return data[case.index]


def golden_check(case: GoldenCase) -> Check:
    def run(ctx: Context) -> str:
        if case.protocol == "v2":
            actual = _v2_value(ctx, case)
        else:
            response = ctx.post_json(case.input)
            if response.status_code != 200:
                raise CheckFailed(
                    f"{_short(case.input)} answered HTTP {response.status_code}: {_body_preview(response)}"
                )
            actual = _field(_json_body(response), case.field)
        where = f"{case.field}: " if case.field else ""
        if case.exact is not None:
            if actual != case.exact or type(actual) is not type(case.exact):
                raise CheckFailed(f"{where}expected {_short(case.exact)}, got {_short(actual)}")
            return f"{where}{_short(actual)} as expected"
        if case.among is not None:
            if not any(actual == a and type(actual) is type(a) for a in case.among):
                raise CheckFailed(f"{where}expected one of {_short(case.among)}, got {_short(actual)}")
            return f"{where}{_short(actual)} is among {_short(case.among)}"
        assert case.within is not None  # a golden case gives exactly one of exact, among, within
        low, high = case.within
        if isinstance(actual, bool) or not isinstance(actual, int | float) or math.isnan(actual):
            raise CheckFailed(
                f"{where}expected a number within [{low}, {high}], got {json_type(actual)} {_short(actual)}"
            )
        if not low <= actual <= high:
            raise CheckFailed(f"{where}{actual:g} is outside [{low}, {high}]")
        return f"{where}{actual:g} within [{low}, {high}]"

    return Check(f"golden.{case.name}", "predict", f"golden example {case.name}", run)


# ---- 5. response -----------------------------------------------------------------------------


@check("response.status", "response", "the answer is HTTP 200")
def response_status(ctx: Context) -> str:
    response = _sample(ctx)
    if response.status_code != 200:
        raise CheckFailed(f"expected HTTP 200, got {response.status_code}: {_body_preview(response)}")
    return "HTTP 200"


@check("response.content_type", "response", "the answer is application/json")
def response_content_type(ctx: Context) -> str:
    kind = _sample(ctx).headers.get("content-type", "")
    if not kind.split(";")[0].strip().lower() == "application/json":
        raise CheckFailed(f"expected Content-Type application/json, got {kind or 'none'}")
    return kind


@check("response.schema", "response", "the answer's JSON has the right types")
def response_schema(ctx: Context) -> str:
    response = _sample(ctx)
    body = _json_body(response)
    validator = Draft202012Validator(ctx.contract.response_schema)
    errors = sorted(validator.iter_errors(body), key=lambda e: list(e.absolute_path))
    if errors:
        raise CheckFailed("; ".join(describe_schema_error(e) for e in errors[:3]))
    return f"{_short(body)} matches the response schema"


# ---- errors ----------------------------------------------------------------------------------


def invalid_check(case: InvalidCase) -> Check:
    def run(ctx: Context) -> str:
        response = ctx.client.request(
            ctx.contract.method,
            ctx.url(ctx.contract.endpoint),
            content=case.body.encode(),
            headers={"Content-Type": case.content_type},
        )
        kind = response.headers.get("content-type", "no content type")
        status_ok = (400 <= response.status_code < 500) if case.status == "4xx" else response.status_code == case.status
        if not status_ok:
            raise CheckFailed(
                f"expected {case.status} for {_short(case.body)}, got {response.status_code} {kind}: "
                f"{_body_preview(response)}"
            )
        try:
            body = response.json()
        except ValueError:
            raise CheckFailed(
                f"{response.status_code} answered with {kind}, not a JSON error: {_body_preview(response)}"
            ) from None
        message = body.get("error") if isinstance(body, dict) else None
        if not isinstance(message, str) or not message:
            raise CheckFailed(f'{response.status_code} JSON has no "error" message: {_short(body)}')
        if case.error_contains and case.error_contains not in message:
            raise CheckFailed(f"error {message!r} does not mention {case.error_contains!r}")
        return f"{response.status_code}: {message}"

    return Check(f"errors.{case.name}", "errors", f"bad input {case.name} gets a 4xx JSON error", run)


# ---- latency ---------------------------------------------------------------------------------


@check("latency.p95", "latency", "p95 latency under concurrent load meets the objective")
def latency_p95(ctx: Context) -> str:
    objective = ctx.contract.latency
    if objective is None:
        raise SkipCheck("no latency objective in the contract")
    payload = objective.input or ctx.contract.sample_input
    url = ctx.url(ctx.contract.endpoint)

    def one(_: int) -> tuple[float, int]:
        started = time.perf_counter()
        try:
            status = ctx.client.request(ctx.contract.method, url, json=payload).status_code
        except httpx.TransportError:
            status = 0
        return time.perf_counter() - started, status

    with ThreadPoolExecutor(max_workers=objective.concurrency) as pool:
        results = list(pool.map(one, range(objective.requests)))
    latencies = sorted(seconds * 1000 for seconds, _ in results)
    errors = sum(1 for _, status in results if status != 200)
    p50 = latencies[len(latencies) // 2]
    p95 = latencies[min(len(latencies) - 1, math.ceil(0.95 * len(latencies)) - 1)]
    summary = (
        f"p50 {p50:.1f} ms, p95 {p95:.1f} ms, max {latencies[-1]:.1f} ms over {objective.requests} requests "
        f"at concurrency {objective.concurrency}"
    )
    if errors:
        raise CheckFailed(f"{errors} of {objective.requests} requests failed; {summary}")
    if p95 > objective.p95_ms:
        raise CheckFailed(f"p95 {p95:.1f} ms exceeds the objective of {objective.p95_ms:g} ms; {summary}")
    return summary


@check_family
def golden_checks(contract: Contract) -> list[Check]:
    """One check per golden example of the contract."""
    return [golden_check(case) for case in contract.golden]


@check_family
def invalid_checks(contract: Contract) -> list[Check]:
    """One check per bad input of the contract."""
    return [invalid_check(case) for case in contract.invalid]
