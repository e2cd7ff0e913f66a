"""The ``push`` step type.

Push ``with.image`` (to ``with.to``; ``with.tls_verify``, credentials from the environment),
signed with ``with.sign`` (a key file) or $CONVEYOR_SIGNING_KEY when set, with its attestations.
"""

from __future__ import annotations

from typing import Any

from conveyor.pipeline.context import StepContext
from conveyor.pipeline.step_args import Flag, SignWith, StepArgs
from conveyor.pipeline.step_types import step_type


class PushArgs(StepArgs):
    image: str
    to: str | None = None  # push under this name instead
    builder: str | None = None  # podman, docker or buildah; default: the first found
    tls_verify: Flag = None  # default: as the engine's registries.conf says
    sign: SignWith = None


@step_type("push", container_login=True, signs=True, args=PushArgs, extras=("supply-chain",))
def push(ctx: StepContext[PushArgs]) -> dict[str, Any]:
    """Push ``with.image`` (to ``with.to``; ``with.tls_verify``, credentials from the environment)."""
    from conveyor.packaging.builders import detect_builder
    from conveyor.packaging.builders import push as run_push
    from conveyor.supply_chain.keys import step_signing_key
    from conveyor.supply_chain.record import sign_pushed

    args = ctx.options
    key = step_signing_key(args.sign, ctx.project, by_default=True)
    image, engine, tls_verify = args.image, detect_builder(args.builder), args.tls_verify
    target = run_push(image, engine, args.to, tls_verify)
    attachment, signer = sign_pushed(image, target, engine, key, tls_verify)
    print(f"pushed {target}" + (f" signed by key {signer[:12]}" if signer else " (unsigned)"))
    if attachment:
        print(f"attestations: {attachment}")
    return {"pushed": target, "attestations": attachment or None, "signed_by": signer}
