"""An image signature: a DSSE envelope over a simple-signing payload naming the image id.

The payload follows the shape of containers' "simple signing" (an identity and an image
digest under ``critical``); the digest is the image id (config digest), which stays the same
from the build through a push and a pull, so one signature verifies the local image and the
one a fresh runner pulls.  ``optional`` records the model the image serves.
"""

from __future__ import annotations

from typing import Any

from conveyor.errors import ChainBroken
from conveyor.supply_chain import envelopes
from conveyor.supply_chain.keys import SigningKey, TrustedKey

TYPE = "conveyor container image signature"


def sign(reference: str, image_id: str, labels: dict[str, str], key: SigningKey) -> dict[str, Any]:
    payload = {
        "critical": {
            "identity": {"docker-reference": reference},
            "image": {"config-digest": f"sha256:{image_id}"},
            "type": TYPE,
        },
        "optional": {
            "model": f"{labels.get('ai.conveyor.model.name')}:{labels.get('ai.conveyor.model.version')}",
            "model-digest": labels.get("ai.conveyor.model.digest"),
        },
    }
    return envelopes.sign(payload, envelopes.SIMPLE_SIGNING, key)


def verify(document: dict[str, Any], image_id: str, trusted: list[TrustedKey], what: str) -> tuple[str, str]:
    """(the signed reference, the signer's key id) when ``document`` signs ``image_id``."""
    payload, key = envelopes.verify(document, envelopes.SIMPLE_SIGNING, trusted, f"the signature of {what}")
    critical = payload.get("critical", {})
    signed = str(critical.get("image", {}).get("config-digest", "")).removeprefix("sha256:")
    if critical.get("type") != TYPE:
        raise ChainBroken(f"the signature of {what} is not an image signature ({critical.get('type')})")
    if signed != image_id:
        raise ChainBroken(f"the signature of {what} is for image sha256:{signed[:12]}, not sha256:{image_id[:12]}")
    return str(critical.get("identity", {}).get("docker-reference", "")), key
