"""What a GGUF file says of itself: architecture, context length, chat template, quantisation.

Read with the ``gguf`` package (the format's reference reader, from llama.cpp's authors), which maps
the file and parses its header and tensor table only, so a model of gigabytes is read in a moment.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from conveyor.errors import InvalidInput
from conveyor.extras import needs
from conveyor.serving.spec import GgufFacts


def read_facts(path: Path) -> GgufFacts:
    """The facts of the GGUF file ``path``; InvalidInput when it is not one."""
    with needs("generative", "registering a GGUF model"):
        import gguf

    try:
        reader = gguf.GGUFReader(path)
    except (ValueError, OSError) as exc:
        raise InvalidInput(f"{path.name} is not a readable GGUF file: {exc}") from None

    def field(key: str) -> Any:
        found = reader.get_field(key)
        return found.contents() if found is not None else None

    architecture = field("general.architecture")
    if not isinstance(architecture, str):
        raise InvalidInput(f"{path.name}: a GGUF file without general.architecture is no model llama.cpp loads")
    file_type = field("general.file_type")
    try:
        quantisation = gguf.LlamaFileType(file_type).name.removeprefix("MOSTLY_") if file_type is not None else None
    except ValueError:
        quantisation = f"file type {file_type}"
    context = field(f"{architecture}.context_length")
    return GgufFacts(
        architecture=architecture,
        context_length=int(context) if context is not None else None,
        quantisation=quantisation,
        chat_template=field("tokenizer.chat_template"),
        model_name=field("general.name"),
    )


def properties(facts: GgufFacts) -> dict[str, str]:
    """The facts a version's properties show (``conveyor models show``); the template stays in model.yaml."""
    shown = {
        "gguf.architecture": facts.architecture,
        "gguf.context_length": facts.context_length,
        "gguf.quantisation": facts.quantisation,
        "gguf.chat_template": "yes" if facts.chat_template else "none",
    }
    return {key: str(value) for key, value in shown.items() if value is not None}
