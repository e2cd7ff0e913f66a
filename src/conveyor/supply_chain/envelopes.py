"""DSSE envelopes (securesystemslib's): sign a JSON payload, verify it against trusted keys.

Provenance and image signatures are both envelopes; a signature's keyid is the key's id
(``keys.key_id``) so the message for an untrusted signer can name it.
"""

from __future__ import annotations

import json
from typing import Any

from conveyor.errors import ChainBroken
from conveyor.extras import needs
from conveyor.supply_chain.keys import SUPPLY_CHAIN, SigningKey, TrustedKey, short

IN_TOTO = "application/vnd.in-toto+json"
SIMPLE_SIGNING = "application/vnd.dev.cosign.simplesigning.v1+json"


def sign(payload: dict[str, Any], payload_type: str, key: SigningKey) -> dict[str, Any]:
    with needs("supply-chain", SUPPLY_CHAIN):
        from securesystemslib.dsse import Envelope
        from securesystemslib.signer import CryptoSigner, SSlibKey

    public = SSlibKey.from_crypto(key.public, keyid=key.key_id)
    envelope = Envelope(json.dumps(payload, sort_keys=True).encode(), payload_type, {})
    envelope.sign(CryptoSigner(key.private, public))
    return envelope.to_dict()


def unsigned(payload: dict[str, Any], payload_type: str) -> dict[str, Any]:
    """An envelope without signatures (a build without a key): readable, refused by ``verify``."""
    with needs("supply-chain", SUPPLY_CHAIN):
        from securesystemslib.dsse import Envelope

    return Envelope(json.dumps(payload, sort_keys=True).encode(), payload_type, {}).to_dict()


def verify(document: dict[str, Any], payload_type: str, trusted: list[TrustedKey], what: str) -> tuple[dict, str]:
    """(the payload, the signer's key id) when a trusted key signed ``document``; ChainBroken otherwise."""
    with needs("supply-chain", SUPPLY_CHAIN):
        from securesystemslib.dsse import Envelope
        from securesystemslib.exceptions import VerificationError
        from securesystemslib.signer import Key, SSlibKey

    try:
        envelope = Envelope.from_dict(document)
    except (KeyError, TypeError, ValueError) as exc:
        raise ChainBroken(f"{what} is not a DSSE envelope: {exc}") from None
    if envelope.payload_type != payload_type:
        raise ChainBroken(f"{what} has payload type {envelope.payload_type}, expected {payload_type}")
    signers = sorted(envelope.signatures)
    if not signers:
        raise ChainBroken(f"{what} carries no signature (build with --sign KEY)")
    keys: list[Key] = [SSlibKey.from_crypto(k.public, keyid=k.key_id) for k in trusted]
    if not {k.keyid for k in keys} & set(signers):
        raise ChainBroken(
            f"{what} is signed by key {', '.join(short(s) for s in signers)}, which is not trusted "
            f"(trusted: {', '.join(short(k.keyid) for k in keys) or 'none'})"
        )
    try:
        accepted = envelope.verify(keys, 1)
    except VerificationError:
        raise ChainBroken(f"the signature of {what} does not verify: its content was changed after signing") from None
    try:
        payload = json.loads(envelope.payload)
    except ValueError:
        raise ChainBroken(f"{what}'s payload is not JSON") from None
    return payload, next(iter(accepted))
