"""The ``generation:`` section of a contract: golden prompts for a generative version, with scorers.

A generative model's answer is a text that differs from run to run, so a golden prompt says what an
answer must hold (``contains``, ``regex``, ``exact``, ``json_schema``, ``refusal``), how close in meaning
it must be to a reference answer (``similar_to``, the MiniLM encoder's cosine similarity) or to what the
incumbent version answers (``incumbent``), with the bar (``min``) and the ``margin`` the gate may not
judge inside.  Each prompt runs ``runs`` times, so the gate knows each metric's own spread::

    generation:
      runs: 3                 # each prompt, at the served temperature (or `temperature`)
      max_tokens: 48
      margin: 0.05            # a metric whose 95% interval is wider than this around its bar: too noisy
      prompts:
        - name: capital
          prompt: What is the capital of France?
          expect:
            - contains: Paris
            - similar_to: The capital of France is Paris.
              min: 0.6
            - incumbent: true   # answers like the incumbent version's (similarity)
              min: 0.7
            - refusal: false
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

SCORERS = ("exact", "contains", "regex", "json_schema", "refusal", "similar_to", "incumbent")
#: the bar where an expectation names none: a text rule must hold on every run; meaning is near, not equal
DEFAULT_MIN = {"similar_to": 0.7, "incumbent": 0.8}


class Expectation(BaseModel):
    """One scorer of a golden prompt's answers, with its bar."""

    model_config = ConfigDict(extra="forbid")

    exact: str | None = Field(default=None, description="The answer, stripped, is this text")
    contains: str | None = Field(default=None, description="The answer holds this text (case-insensitive)")
    regex: str | None = Field(default=None, description="A regular expression the answer matches (re.search)")
    json_schema: dict[str, Any] | None = Field(default=None, description="The answer is JSON valid under it")
    refusal: bool | None = Field(default=None, description="true: the answer refuses; false: it does not")
    similar_to: str | None = Field(default=None, description="A reference answer, compared by meaning (MiniLM)")
    incumbent: bool | None = Field(default=None, description="true: compared by meaning with the incumbent's")
    min: float | None = Field(
        default=None, ge=0, le=1, description="The bar: share of runs that hold (text rules, default 1) or similarity"
    )
    margin: float | None = Field(
        default=None, ge=0, le=1, description="This expectation's margin (default: the gate's)"
    )

    @model_validator(mode="after")
    def _one_scorer(self) -> Expectation:
        given = [name for name in SCORERS if getattr(self, name) is not None]
        if len(given) != 1:
            raise ValueError(f"an expectation gives exactly one of {', '.join(SCORERS)} (given: {given or 'none'})")
        if self.incumbent is False:
            raise ValueError("incumbent: true compares with the incumbent version; leave it out otherwise")
        return self

    @property
    def scorer(self) -> str:
        return next(name for name in SCORERS if getattr(self, name) is not None)

    @property
    def bar(self) -> float:
        return self.min if self.min is not None else DEFAULT_MIN.get(self.scorer, 1.0)


class GoldenPrompt(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    prompt: str | None = Field(default=None, description="A user message (the version's system prompt comes first)")
    messages: list[dict[str, str]] | None = Field(default=None, description="The chat, instead of prompt")
    expect: list[Expectation] = Field(min_length=1)

    @model_validator(mode="after")
    def _one_input(self) -> GoldenPrompt:
        if (self.prompt is None) == (self.messages is None):
            raise ValueError(f"golden prompt {self.name!r}: give exactly one of prompt, messages")
        return self

    def chat(self) -> list[dict[str, str]]:
        return self.messages if self.messages is not None else [{"role": "user", "content": self.prompt or ""}]


class GenerationGate(BaseModel):
    """Golden prompts, each run ``runs`` times; every expectation judged with its measured spread."""

    model_config = ConfigDict(extra="forbid")

    runs: int = Field(default=3, ge=1, le=50, description="Times each prompt is asked (its spread needs 2 or more)")
    temperature: float | None = Field(
        default=None, ge=0, le=2, description="Sampling temperature [default: the served version's own]"
    )
    max_tokens: int = Field(default=64, ge=1, le=4096)
    margin: float = Field(default=0.05, ge=0, le=1, description="Half-width of the interval a metric may have")
    prompts: list[GoldenPrompt] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique_names(self) -> GenerationGate:
        names = [p.name for p in self.prompts]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise ValueError(f"golden prompt names must be unique; repeated: {repeated}")
        return self
