"""The evaluation gate of a generative version: a contract's golden prompts, asked and scored.

One check per golden prompt and expectation (``generation.<prompt>.<scorer>``, layer ``generation``).
Each prompt is asked ``runs`` times through the server's OpenAI API (``/v1/chat/completions``, at the
served temperature unless the contract names one), once for all its expectations; an ``incumbent``
expectation asks the incumbent server the same (``conveyor verify --incumbent``, ``conveyor models
challenge``).  The runs' scores are judged with their own spread (``generative.judgement``): a metric
under its bar beyond what its spread explains fails, one too noisy to judge is reported (a skipped
check saying so), never a failure.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import httpx

from conveyor.verify.checks import Check, CheckFailed, Context, SkipCheck, check_family
from conveyor.verify.contract import Contract
from conveyor.verify.generation_contract import Expectation, GenerationGate, GoldenPrompt

LAYER = "generation"


class Answers:
    """Each prompt's answers from each server, asked once (``runs`` times) however many scorers read them."""

    def __init__(self, gate: GenerationGate) -> None:
        self.gate = gate
        self._answers: dict[tuple[str, str], list[str]] = {}
        self._models: dict[str, str] = {}
        self._locks: dict[tuple[str, str], threading.Lock] = {}
        self._guard = threading.Lock()

    def of(self, client: httpx.Client, url: str, prompt: GoldenPrompt) -> list[str]:
        key = (url, prompt.name)
        with self._guard:
            lock = self._locks.setdefault(key, threading.Lock())
        with lock:
            if key not in self._answers:
                model = self._model(client, url)
                self._answers[key] = [self._ask(client, url, model, prompt) for _ in range(self.gate.runs)]
            return self._answers[key]

    def _model(self, client: httpx.Client, url: str) -> str:
        with self._guard:
            known = self._models.get(url)
        if known is None:
            response = client.get(url + "/v1/models")
            if response.status_code != 200:
                raise CheckFailed(f"{url}/v1/models answered HTTP {response.status_code}: no OpenAI-compatible server")
            known = str(response.json()["data"][0]["id"])
            with self._guard:
                self._models[url] = known
        return known

    def _ask(self, client: httpx.Client, url: str, model: str, prompt: GoldenPrompt) -> str:
        body: dict[str, Any] = {"model": model, "messages": prompt.chat(), "max_tokens": self.gate.max_tokens}
        if self.gate.temperature is not None:
            body["temperature"] = self.gate.temperature
        response = client.post(url + "/v1/chat/completions", json=body)
        if response.status_code != 200:
            raise CheckFailed(f"{url} answered {prompt.name!r} with HTTP {response.status_code}: {_error(response)}")
        return str(response.json()["choices"][0]["message"]["content"] or "")


def _error(response: httpx.Response) -> str:
    try:
        return str(response.json()["error"]["message"])
    except (ValueError, KeyError, TypeError):
        return response.text[:200]


def _describe(expectation: Expectation) -> str:
    scorer = expectation.scorer
    if scorer == "incumbent":
        return "similarity to the incumbent's answers"
    if scorer == "similar_to":
        return "similarity to the reference answer"
    if scorer == "refusal":
        return "share of runs that refuse" if expectation.refusal else "share of runs that do not refuse"
    return f"share of runs that hold ({scorer})"


def _expectation_check(answers: Answers, prompt: GoldenPrompt, expectation: Expectation) -> Callable[[Context], str]:
    def run(ctx: Context) -> str:
        from conveyor.generative.judgement import judge
        from conveyor.generative.scorers import score

        url = ctx.url("")
        theirs = None
        if expectation.scorer == "incumbent":
            if ctx.incumbent_url is None:
                raise SkipCheck("no incumbent to compare with: `conveyor verify --incumbent`, or `models challenge`")
            theirs = answers.of(ctx.client, ctx.incumbent_url.rstrip("/"), prompt)
        mine = answers.of(ctx.client, url, prompt)
        margin = answers.gate.margin if expectation.margin is None else expectation.margin
        judged = judge(score(expectation, mine, theirs), expectation.bar, margin)
        message = judged.describe(_describe(expectation))
        if judged.outcome == "failed":
            raise CheckFailed(f"{message}; an answer: {mine[0][:120]!r}")
        if judged.outcome == "too noisy":
            raise SkipCheck(message)
        return message

    return run


@check_family
def generation_checks(contract: Contract) -> list[Check]:
    """One check per golden prompt and expectation of the contract's ``generation`` section."""
    gate = contract.generation
    if gate is None:
        return []
    answers = Answers(gate)
    checks: list[Check] = []
    for prompt in gate.prompts:
        seen: dict[str, int] = {}
        for expectation in prompt.expect:
            scorer = expectation.scorer
            seen[scorer] = seen.get(scorer, 0) + 1
            suffix = "" if seen[scorer] == 1 else f".{seen[scorer]}"
            checks.append(
                Check(
                    f"{LAYER}.{prompt.name}.{scorer}{suffix}",
                    LAYER,
                    f"golden prompt {prompt.name!r}: {_describe(expectation)}",
                    _expectation_check(answers, prompt, expectation),
                )
            )
    return checks
