"""A GGUF file, or a new prompt for a generative version, made into the files a version holds.

A generative version is the GGUF weights, ``model.yaml`` (task ``text-generation`` and what the GGUF
says of itself) and ``generation.yaml`` (its system prompt, template and sampling defaults).  A
prompt-only change (``conveyor models register --from chat:3 --generation-config cfg.yaml``) is the
next version with the same weights' blob and a new ``generation.yaml``: nothing is downloaded or copied.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import yaml

from conveyor.errors import InvalidInput
from conveyor.generative.config import GENERATION_FILE, GenerationConfig, load_config, write_config
from conveyor.generative.gguf_facts import properties, read_facts
from conveyor.registry.derive import derive_version
from conveyor.registry.protocol import Registry
from conveyor.registry.records import Lineage, ModelVersion
from conveyor.serving.spec import SPEC_FILE, ModelSpec
from conveyor.task_kinds import Task

GGUF_FRAMEWORK = "gguf"  # what a GGUF version's framework reads (registry/onnx_info.framework_of)


def gguf_version_files(
    gguf: Path, name: str, generation_config: Path | None, scratch: Path
) -> tuple[list[tuple[str, Path]], dict[str, str]]:
    """(files to store beside the GGUF file: model.yaml and generation.yaml, the version's properties)."""
    facts = read_facts(gguf)
    config = load_config(generation_config) if generation_config is not None else GenerationConfig()
    spec = ModelSpec(name=name, task=Task.TEXT_GENERATION, model_file=gguf.name, gguf=facts)
    spec_path = scratch / SPEC_FILE
    written = spec.model_dump(mode="json", exclude_none=True, exclude={"labels", "max_length", "description"})
    spec_path.write_text(yaml.safe_dump(written, sort_keys=False, allow_unicode=True, width=100))
    return [(SPEC_FILE, spec_path), (GENERATION_FILE, write_config(config, scratch / GENERATION_FILE))], properties(
        facts
    )


def register_generation_config(
    reg: Registry,
    base_ref: str,
    generation_config: Path,
    scratch: Path,
    *,
    name: str | None = None,
    description: str = "",
    aliases: Sequence[str] = (),
    run_id: str | None = None,
) -> ModelVersion:
    """The next version of ``name`` (default: ``base_ref``'s model): ``base_ref``'s weights with a new config."""
    base = reg.resolve(base_ref)
    if base.framework != GGUF_FRAMEWORK or not any(entry.path == SPEC_FILE for entry in base.files):
        raise InvalidInput(
            f"--from {base_ref}: {base.ref} is no generative version (a GGUF model registered by conveyor); "
            "a generation config belongs to one"
        )
    config = write_config(load_config(generation_config), scratch / GENERATION_FILE)
    lineage = Lineage(source=str(generation_config.resolve()), run_id=run_id)
    return derive_version(
        reg,
        base,
        name or base.name,
        [(GENERATION_FILE, config)],
        description=description,
        aliases=aliases,
        lineage=lineage,
    )
