"""A verification check from outside Conveyor: the first golden input gets a non-empty JSON answer."""

from __future__ import annotations

from conveyor.verify import CheckFailed, Context, check


@check("acme.answer-not-empty", "response", "the first golden input gets a non-empty JSON answer")
def answer_not_empty(ctx: Context) -> str:
    payload = ctx.contract.golden[0].input if ctx.contract.golden else ["hello"]
    response = ctx.post_json(payload)
    if response.status_code != 200 or not response.json():
        raise CheckFailed(f"{response.status_code}: {response.text[:200]!r}")
    return f"answered {response.text[:80]}"
