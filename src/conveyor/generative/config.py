"""A generative version's generation config: its system prompt, chat template and sampling defaults.

The config is one small YAML file in the version (``generation.yaml``) beside the GGUF weights, so a
prompt change is a new version that shares the weights' blob by digest (``registration.derive``): it
is versioned, aliased, diffed (``conveyor models diff``), canaried and rolled back like a model.  A
request's own parameters win over these defaults, as the OpenAI API's do over a server's.
"""

from __future__ import annotations

from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from conveyor.errors import InvalidInput

GENERATION_FILE = "generation.yaml"


class GenerationConfig(BaseModel):
    """What a version says about how it generates; every field optional, the engine's defaults otherwise."""

    model_config = ConfigDict(extra="forbid")

    system_prompt: str | None = Field(
        default=None, description="Sent first, as the system message, before every chat's own messages."
    )
    chat_template: str | None = Field(
        default=None, description="A Jinja chat template replacing the one the GGUF file carries."
    )
    temperature: float = Field(default=0.7, ge=0, le=2)
    top_p: float = Field(default=0.95, gt=0, le=1)
    top_k: int = Field(default=40, ge=0)
    repeat_penalty: float = Field(default=1.1, gt=0)
    max_tokens: int = Field(default=256, ge=1, description="Tokens generated when a request names no max_tokens.")
    stop: list[str] = Field(default_factory=list, description="Sequences that end an answer (not included in it).")
    seed: int | None = Field(default=None, description="Sampling seed when a request names none (None: random).")

    @field_validator("stop", mode="before")
    @classmethod
    def _one_or_many(cls, value: object) -> object:
        return [value] if isinstance(value, str) else value


def load_config(path: Path) -> GenerationConfig:
    """The config in ``path``; InvalidInput naming the file and the field when it does not hold."""
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise InvalidInput(f"{path}: not a readable YAML file: {exc}") from None
    if not isinstance(raw, dict):
        raise InvalidInput(f"{path}: expected a mapping of generation settings (system_prompt, temperature, ...)")
    try:
        return GenerationConfig.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors())
        raise InvalidInput(f"{path}: {problems}") from None


def config_in(folder: Path) -> GenerationConfig:
    """The config a version folder carries (the defaults where it has none)."""
    path = folder / GENERATION_FILE
    return load_config(path) if path.is_file() else GenerationConfig()


def write_config(config: GenerationConfig, path: Path) -> Path:
    """The config as the YAML a person reads in ``models diff``: only what differs from the defaults."""
    fields = config.model_dump(exclude_defaults=True)
    path.write_text(yaml.safe_dump(fields, sort_keys=False, allow_unicode=True, width=100) if fields else "{}\n")
    return path
