"""The scorers of the evaluation gate: one score per run of a golden prompt, in [0, 1].

Text rules score 1 or 0 per answer: ``exact`` (stripped), ``contains`` (case-insensitive), ``regex``
(``re.search``), ``json_schema`` (the answer parses as JSON valid under it), ``refusal``
(``generative.refusal``, the answer refuses or not as expected).  Meaning scores a similarity: the
cosine of the MiniLM sentence embeddings (``conveyor.minilm``, mean-pooled and normalised) of the answer
and a reference answer (``similar_to``), or, for ``incumbent``, the mean similarity of the answer to
each of the incumbent version's answers to the same prompt.  Tiny models answer poorly and judges
are noisy; these scorers are deterministic given the answers, so the only noise is the model's own.
"""

from __future__ import annotations

import json
import re
import threading
from typing import TYPE_CHECKING, Any

from conveyor.generative.refusal import is_refusal

if TYPE_CHECKING:
    import numpy as np

    from conveyor.minilm import SentenceEncoder
    from conveyor.verify.generation_contract import Expectation

_encoder: SentenceEncoder | None = None
_encoder_lock = threading.Lock()


def encoder() -> SentenceEncoder:
    """The MiniLM encoder, built once per process (its graph takes a second to write)."""
    global _encoder
    with _encoder_lock:
        if _encoder is None:
            from conveyor.minilm import SentenceEncoder, missing_reason

            reason = missing_reason()
            if reason:
                from conveyor.errors import MissingExtra

                raise MissingExtra(f"comparing answers by meaning needs the MiniLM encoder: {reason}")
            _encoder = SentenceEncoder(threads=1)
        return _encoder


def embed(texts: list[str]) -> np.ndarray:
    return encoder().embed(texts)


def similarities(answers: list[str], others: list[str]) -> list[float]:
    """For each answer, its mean cosine similarity to ``others`` (one reference, or another version's runs)."""
    mine, theirs = embed(answers), embed(others)
    return [float(row.mean()) for row in mine @ theirs.T]


def _valid_json(text: str, schema: dict[str, Any]) -> bool:
    from jsonschema.validators import validator_for

    try:
        document = json.loads(text)
    except ValueError:
        return False
    return bool(validator_for(schema)(schema).is_valid(document))


def score(expectation: Expectation, answers: list[str], incumbent: list[str] | None = None) -> list[float]:
    """One score per answer for ``expectation`` (``incumbent``: the incumbent's answers to the same prompt)."""
    scorer = expectation.scorer
    if scorer == "similar_to":
        return similarities(answers, [expectation.similar_to or ""])
    if scorer == "incumbent":
        if not incumbent:
            raise ValueError("the incumbent scorer needs the incumbent's answers")
        return similarities(answers, incumbent)
    return [float(_holds(expectation, answer)) for answer in answers]


def _holds(expectation: Expectation, answer: str) -> bool:
    scorer = expectation.scorer
    if scorer == "exact":
        return answer.strip() == (expectation.exact or "").strip()
    if scorer == "contains":
        return (expectation.contains or "").lower() in answer.lower()
    if scorer == "regex":
        return re.search(expectation.regex or "", answer) is not None
    if scorer == "json_schema":
        return _valid_json(answer, expectation.json_schema or {})
    assert scorer == "refusal"
    return is_refusal(answer) == expectation.refusal
