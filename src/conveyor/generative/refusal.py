"""Whether an answer is a refusal: the phrases instruction-tuned models refuse with.

A refusal is a 200 with a polite sentence in it, so an error rate never sees one; the evaluation
gate's ``refusal`` scorer, the canary's refusal-rate shift and the monitor all ask this one question
of an answer's text.  A phrase list (in the answer's first sentences, case-insensitive) is what the
evaluation tools use for it too (e.g. OpenAI's evals and HELM's refusal detectors): it is cheap,
deterministic and explainable, and a model's refusals are formulaic.
"""

from __future__ import annotations

import re

#: refusal openings of English instruction-tuned models (apostrophes straight or curly)
PHRASES = (
    r"i (?:can ?not|can'?t|won'?t|will not|am (?:not able|unable)|'m (?:not able|unable)|must decline|do not|don'?t) "
    r"(?:help|assist|answer|do that|provide|comply|support|fulfil|engage)",
    r"i(?:'m| am) (?:sorry|afraid),? (?:but )?i (?:can ?not|can'?t|won'?t|am unable|'m unable)",
    r"(?:i )?(?:can ?not|can'?t|unable to) help (?:you )?with (?:that|this)",
    r"i(?:'m| am) not (?:allowed|permitted) to",
    r"as an ai(?: language model)?,? i (?:can ?not|can'?t|don'?t|do not)",
    r"i (?:refuse|decline) to",
)
HEAD_CHARACTERS = 200  # a refusal says so at the start; a long answer that quotes one later is an answer

REFUSAL = re.compile("|".join(f"(?:{p})" for p in PHRASES), re.IGNORECASE)


def is_refusal(text: str) -> bool:
    """Whether ``text`` opens with a refusal (curly apostrophes read as straight ones)."""
    return REFUSAL.search(text[:HEAD_CHARACTERS].replace("\u2019", "'")) is not None
