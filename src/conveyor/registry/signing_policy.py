"""The registry's signing policy, and who may relax it.

A model tagged ``require-signed=true`` is only downloaded, served and rolled out with a valid
signature by a trusted key (``conveyor.supply_chain.model_signature`` checks it).  The tag is
the policy, so changing it is a decision about trust, not about metadata: any write token may
*tighten* it (turn it on), but *relaxing* it (unsetting it, or setting it to anything but a yes)
takes an ``admin`` token on the registry server, or the registry's owner working on its
database directly (the local CLI).  Every change and every refused attempt goes to the audit log
(``audit.py``), so a stolen CI token can neither lift the policy nor try unseen.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

from conveyor.registry.audit import Actor

POLICY_TAG = "require-signed"  # on the model: its versions are only downloaded and served signed
_YES = ("true", "yes", "1")

Change = Literal["relaxed", "tightened"]


def requires_signature(tags: Mapping[str, str]) -> bool:
    """Whether a model's tags ask for signed versions."""
    return tags.get(POLICY_TAG, "").lower() in _YES


def policy_change(before: Mapping[str, str], after: Mapping[str, str]) -> Change | None:
    """How a change of a model's tags moves its signing policy (None: it does not)."""
    was, now = requires_signature(before), requires_signature(after)
    if was == now:
        return None
    return "tightened" if now else "relaxed"


def refusal(actor: Actor, model: str, before: Mapping[str, str], after: Mapping[str, str]) -> str | None:
    """Why ``actor`` may not make this change of ``model``'s tags (None: it may)."""
    if policy_change(before, after) != "relaxed" or actor.may_relax_policies:
        return None
    now = f"{POLICY_TAG}={after[POLICY_TAG]!r}" if POLICY_TAG in after else f"unsetting {POLICY_TAG}"
    return (
        f"relaxing the signing policy of {model!r} ({now}) needs a token with admin scope; "
        f"{actor.who!r} has {actor.scope} scope (the attempt is in the audit log)"
    )


def judge(
    actor: Actor, model: str, before: Mapping[str, str], after: Mapping[str, str], of_version: bool = False
) -> tuple[str, str | None]:
    """A change of tags: (the audit log's action, why it is refused or None).  Only a model's own
    tags hold its policy; a version's are metadata (its signature is checked, not trusted)."""
    if of_version:
        return "tags.changed", None
    refused = refusal(actor, model, before, after)
    if refused is not None:
        return "policy.relax-refused", refused
    change = policy_change(before, after)
    return (f"policy.{change}" if change else "tags.changed"), None
