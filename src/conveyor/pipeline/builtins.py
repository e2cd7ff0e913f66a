"""Built-in step types: each calls the same library code as its ``conveyor`` command.

fetch-model, lint, test, verify, build, push, register, deploy.
"""

from __future__ import annotations

import shlex
import subprocess
from pathlib import Path
from typing import Any

from conveyor.pipeline.context import StepContext, StepFailed


def fetch_model(ctx: StepContext) -> dict[str, Any]:
    """Download ``with.ref`` (verified) into the run's artifacts (``with.dest``, default model/)."""
    from conveyor.registry.config import open_registry

    dest = ctx.artifacts / ctx.arg("dest", "model")
    version = open_registry().download(ctx.arg("ref", required=True), dest)
    print(f"fetched {version.ref} sha256:{version.digest} into {dest}")
    return {
        "ref": version.ref,
        "name": version.name,
        "version": version.version,
        "digest": version.digest,
        "path": str(dest),
    }


def lint(ctx: StepContext) -> dict[str, Any]:
    """ruff over ``with.path`` (default: the project)."""
    from conveyor.verify.checks import CheckFailed, Context, SkipCheck
    from conveyor.verify.contract import Contract
    from conveyor.verify.static import lint_ruff

    path = ctx.project / ctx.arg("path", ".")
    try:
        message = lint_ruff(Context(None, Contract(), project=path))
    except (CheckFailed, SkipCheck) as exc:
        raise StepFailed(str(exc)) from None
    print(message)
    return {"result": message}


def test(ctx: StepContext) -> dict[str, Any]:
    """The project's tests: ``with.command`` (default ``python -m pytest -q``)."""
    command = ctx.arg("command", "python -m pytest -q")
    result = subprocess.run(shlex.split(command), cwd=ctx.project)
    if result.returncode != 0:
        raise StepFailed(f"{command} exited with {result.returncode}")
    return {"command": command}


def verify(ctx: StepContext) -> dict[str, Any]:
    """``conveyor verify`` of ``with.target`` (URL, model path, reference or image with ``with.image: true``)."""
    import sys

    from rich.console import Console

    from conveyor.verify.contract import load_contract
    from conveyor.verify.reports import ok, print_table, write_junit
    from conveyor.verify.runner import load_custom_checks, verify_target

    target = str(ctx.arg("target", required=True))
    contract_file = ctx.arg("contract")
    contract = load_contract(ctx.project / contract_file if contract_file else None)
    junit = ctx.artifacts / f"verify-{ctx.step}.xml"
    results = verify_target(
        target,
        contract,
        image=bool(ctx.arg("image", False)),
        custom=load_custom_checks(None, []),
        skip=list(ctx.arg("skip", [])),
    )
    print_table(results, target, Console(file=sys.stdout, width=140))
    write_junit(results, target, junit)
    if not ok(results):
        bad = [r.id for r in results if r.status in ("failed", "error")]
        raise StepFailed(f"verification of {target} failed: {', '.join(bad)}")
    return {"junit": str(junit), "checks": len(results)}


def build(ctx: StepContext) -> dict[str, Any]:
    """Build ``with.ref`` into image ``with.tag`` (``with.base_image``, ``with.builder``)."""
    from conveyor.packaging import DEFAULT_BASE
    from conveyor.packaging.builders import build as run_build
    from conveyor.packaging.builders import detect_builder
    from conveyor.packaging.context import default_wheelhouse, write_context
    from conveyor.registry.config import open_registry

    ref, tag = ctx.arg("ref", required=True), ctx.arg("tag", required=True)
    engine = detect_builder(ctx.arg("builder"))
    version, folder = open_registry().cached(ref)
    context = ctx.artifacts / f"context-{ctx.step}"
    if context.exists():
        import shutil

        shutil.rmtree(context)
    write_context(
        version,
        folder,
        context,
        ctx.arg("base_image", DEFAULT_BASE),
        wheel_cache=default_wheelhouse(),
        title=tag,
    )
    image = run_build(context, tag, engine, on_line=print)
    print(f"built {image.reference} {image.image_id[:12]} {image.size / 2**20:.0f} MiB in {image.seconds:.1f}s")
    return {
        "image": image.reference,
        "id": image.image_id,
        "size": image.size,
        "model_ref": version.ref,
        "digest": version.digest,
    }


def push(ctx: StepContext) -> dict[str, Any]:
    """Push ``with.image`` (to ``with.to``; ``with.tls_verify``, credentials from the environment)."""
    from conveyor.packaging.builders import detect_builder
    from conveyor.packaging.builders import push as run_push

    target = run_push(
        ctx.arg("image", required=True),
        detect_builder(ctx.arg("builder")),
        ctx.arg("to"),
        bool(ctx.arg("tls_verify", True)),
    )
    print(f"pushed {target}")
    return {"pushed": target}


def register(ctx: StepContext) -> dict[str, Any]:
    """Register ``with.path`` as ``with.name`` (aliases, metrics, properties; lineage run id = this run)."""
    from conveyor.registry.config import open_registry
    from conveyor.registry.local import git_commit
    from conveyor.registry.records import Lineage

    metrics = {k: float(v) for k, v in (ctx.arg("metrics", {}) or {}).items()}
    version = open_registry().register(
        Path(ctx.arg("path", required=True)),
        ctx.arg("name", required=True),
        description=ctx.arg("description", ""),
        aliases=list(ctx.arg("aliases", []) or []),
        properties={k: str(v) for k, v in (ctx.arg("properties", {}) or {}).items()},
        lineage=Lineage(run_id=ctx.run_id, metrics=metrics, git_commit=git_commit(ctx.project)),
        skip_unchanged=bool(ctx.arg("skip_unchanged", False)),
    )
    print(f"registered {version.ref} sha256:{version.digest}")
    return {"ref": version.ref, "version": version.version, "digest": version.digest}


def deploy(ctx: StepContext) -> dict[str, Any]:
    """Point ``with.name@with.alias`` at ``with.version`` (default: the version of ``with.ref``)."""
    from conveyor.registry.config import open_registry

    registry = open_registry()
    name, alias = ctx.arg("name", required=True), ctx.arg("alias", "staging")
    version = ctx.arg("version") or registry.resolve(ctx.arg("ref", required=True)).version
    result = registry.set_alias(name, alias, int(version), force=bool(ctx.arg("force", False)))
    print(f"{name}@{alias} -> {name}:{result.version}")
    return {"alias": f"{name}@{alias}", "version": result.version}
