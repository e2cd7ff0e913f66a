"""An image's own claims, checked: its labels, the registry's version and the served model agree.

``conveyor package build`` labels an image with the model version it carries
(``ai.conveyor.model.name``, ``.version``, ``.digest``).  Those labels are what a deployment,
a rollout or a person reads to know what runs, so they must be true: the running container must
serve that name and version (``/v2/models/NAME``), and the registry must hold that version
with that digest.  A registry that does not know the model at all (an image verified away from
its registry) cannot be compared with: the check is skipped, saying so.
"""

from __future__ import annotations

from conveyor.containers import container_engine, image_labels
from conveyor.errors import ConveyorError, NotFound
from conveyor.verify.checks import CheckFailed, Context, SkipCheck, check

LABELS = ("ai.conveyor.model.name", "ai.conveyor.model.version", "ai.conveyor.model.digest")


@check("image.agreement", "image", "the image's labels, the registry's digest and /v2/models/NAME agree")
def image_agreement(ctx: Context) -> str:
    if ctx.image is None:
        raise SkipCheck("not verifying an image")
    labels = image_labels(container_engine(), ctx.image)
    missing = [label for label in LABELS if not labels.get(label)]
    if missing:
        raise CheckFailed(f"{ctx.image} has no {', '.join(missing)} label: it was not built by `conveyor build`")
    name, version, digest = (labels[label] for label in LABELS)

    served = ctx.client.get(ctx.url(f"/v2/models/{name}"))
    if served.status_code != 200:
        raise CheckFailed(f"the labels say {name}:{version}, but /v2/models/{name} answered {served.status_code}")
    metadata = served.json()
    if metadata.get("name") != name or version not in (metadata.get("versions") or []):
        raise CheckFailed(
            f"the labels say {name}:{version}, but the container serves {metadata.get('name')} "
            f"versions {metadata.get('versions')}"
        )

    from conveyor.registry.config import open_registry

    registry = open_registry()
    try:
        registry.get_model(name)
    except NotFound:
        raise SkipCheck(f"the registry here does not know model {name!r}: nothing to compare the digest with") from None
    except ConveyorError as exc:
        raise SkipCheck(f"cannot ask the registry about {name}: {exc}") from None
    try:
        registered = registry.resolve(f"{name}:{version}")
    except NotFound:
        raise CheckFailed(f"the labels say {name}:{version}, which the registry does not have") from None
    if f"sha256:{registered.digest}" != digest:
        raise CheckFailed(f"the labels say {name}:{version} is {digest}, the registry says sha256:{registered.digest}")
    return f"{name}:{version} {digest[:19]}... in the labels, the registry and /v2/models/{name}"
