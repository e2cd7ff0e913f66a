"""A BentoML service for the MiniLM model, as BentoML users write one: a batchable API.

BentoML's adaptive batching joins concurrent calls of ``classify`` (each a list of sentences) into
one call of at most 16 sentences.  Served with ``bentoml serve bentoml_service:MiniLMService``.
"""

from __future__ import annotations

import bentoml
from minilm import MiniLM


@bentoml.service(workers=1)
class MiniLMService:
    def __init__(self) -> None:
        self.model = MiniLM()

    @bentoml.api(batchable=True, max_batch_size=16, max_latency_ms=10_000)
    def classify(self, texts: list[str]) -> list[str]:
        return self.model.classify(texts)
