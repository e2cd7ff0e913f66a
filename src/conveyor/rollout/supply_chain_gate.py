"""The rollout's supply-chain gate: a canary no trusted key vouches for gets no traffic.

Asked for by ``rollout.supply_chain.require`` in conveyor.yaml or ``rollout start
--require-signed``.  It runs before the canary's backend starts: a registry version must carry a
model signature by a trusted key over exactly its files; an image (``--image``) must pass every
link of ``conveyor verify --supply-chain``.  A refusal names the broken link and leaves the
service as it was.
"""

from __future__ import annotations

from pathlib import Path

from conveyor.errors import ChainBroken
from conveyor.supply_chain.keys import load_trusted_keys


def check_canary(ref: str, registered: bool, image: str | None, trusted_keys: list[Path]) -> None:
    """Return when the canary's links hold; ChainBroken naming the first that does not."""
    from conveyor.registry.config import open_registry

    trusted = load_trusted_keys(trusted_keys)
    if not trusted:
        raise ChainBroken(
            f"the rollout of {ref} requires a signed canary but names no trusted keys "
            "(rollout.supply_chain.trusted_keys, --trusted-key or CONVEYOR_TRUSTED_KEYS)"
        )
    registry = open_registry()
    if image is not None:
        from conveyor.supply_chain.chain import verify_image

        chain = verify_image(image, trusted, registry)
        broken = chain.first_broken()
        if broken is not None:
            raise ChainBroken(f"refused {image} before any traffic moved: {broken.name}: {broken.message}")
        return
    if not registered:
        raise ChainBroken(f"refused {ref} before any traffic moved: it is not a registry version, so no signature")
    from conveyor.supply_chain.model_signature import verify_version

    version, folder = registry.cached(ref)
    try:
        verify_version(registry, version, folder, trusted)
    except ChainBroken as exc:
        raise ChainBroken(f"refused {ref} before any traffic moved: model-signature: {exc}") from None
