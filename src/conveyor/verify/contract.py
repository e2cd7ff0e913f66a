"""The contract file a team writes once per model (``contract.yaml``).

endpoint: /predict
method: POST
response_schema:            # JSON Schema of the answer to one string (default: the classic one)
  type: object
  properties: {positive: {type: boolean}}
  required: [positive]
golden:
  - name: clearly-positive
    input: ["I love this, it works perfectly"]
    exact: {positive: true}
  - name: any-answer
    input: ["espresso is too strong"]
    field: positive
    among: [true, false]
  - name: confident
    protocol: v2
    input: ["What a wonderful day"]
    output: probabilities
    index: 1
    within: [0.6, 1.0]
invalid:
  - name: empty-list
    body: "[]"
    status: 422
    error_contains: non-empty
latency:
  p95_ms: 250
  concurrency: 8
  requests: 200
v2:
  model: sentiment
skip: [lint.ruff]

A generative version's contract has a ``generation:`` section instead (``verify/generation_contract.py``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

from conveyor.verify.generation_contract import GenerationGate
from conveyor.yamlfile import load_yaml_model

CLASSIC_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"positive": {"type": "boolean"}},
    "required": ["positive"],
}


class GoldenCase(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    input: list[Any] = Field(min_length=1, description="Texts, or records of a tabular model, or base64 images")
    protocol: Literal["classic", "v2"] = "classic"
    exact: Any = None
    field: str | None = Field(default=None, description="Dotted path into the answer, e.g. positive or 0.label")
    among: list[Any] | None = None
    within: tuple[float, float] | None = None
    output: str | None = Field(default=None, description="v2: the output tensor to read")
    index: int = Field(default=0, description="v2: index into the output's flat data")

    @model_validator(mode="after")
    def _one_expectation(self) -> GoldenCase:
        given = [x is not None for x in (self.exact, self.among, self.within)]
        if sum(given) != 1:
            raise ValueError(f"golden case {self.name!r}: give exactly one of exact, among, within")
        if self.protocol == "v2" and self.output is None:
            raise ValueError(f"golden case {self.name!r}: a v2 case names its output tensor")
        return self


class InvalidCase(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    body: str
    content_type: str = "application/json"
    status: int | Literal["4xx"] = "4xx"
    error_contains: str | None = None


class Latency(BaseModel):
    model_config = ConfigDict(extra="forbid")

    p95_ms: float = Field(gt=0)
    concurrency: int = Field(default=8, ge=1, le=256)
    requests: int = Field(default=200, ge=1, le=100_000)
    input: list[Any] | None = None


class V2Settings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    model: str
    version: str | None = None
    text_input: str = "text"
    inputs: list[dict[str, Any]] | None = Field(
        default=None, description="The v2 inputs of the sample, where the model takes more than one BYTES input"
    )


DEFAULT_INVALID = [
    InvalidCase(name="malformed-json", body='["unclosed'),
    InvalidCase(name="empty-list", body="[]"),
    InvalidCase(name="non-string-item", body="[42]"),
    InvalidCase(name="null-body", body="null"),
    InvalidCase(name="object-body", body='{"text": "hello"}'),
    InvalidCase(name="wrong-content-type", body='["hello"]', content_type="text/plain"),
]


class Contract(BaseModel):
    model_config = ConfigDict(extra="forbid")

    endpoint: str = "/predict"
    method: Literal["POST", "PUT"] = "POST"
    sample_input: list[Any] = Field(
        default_factory=lambda: ["MLOps is critical for robustness"],
        min_length=1,
        description="What /predict is sent: texts, a tabular model's records or base64 images "
        "(unset: made from the served model's metadata for its task)",
    )
    response_schema: dict[str, Any] = Field(default_factory=lambda: dict(CLASSIC_SCHEMA))
    golden: list[GoldenCase] = Field(default_factory=list)
    invalid: list[InvalidCase] = Field(default_factory=lambda: list(DEFAULT_INVALID))
    latency: Latency | None = None
    v2: V2Settings | None = None
    generation: GenerationGate | None = Field(
        default=None, description="A generative version's evaluation gate: golden prompts with scorers"
    )
    skip: list[str] = Field(default_factory=list)


def load_contract(path: Path | None) -> Contract:
    if path is None:
        return Contract()
    return load_yaml_model(Path(path), Contract, "contract file not found")


def dump_contract(contract: Contract) -> str:
    data = contract.model_dump(mode="json", exclude_none=True)
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True)
