"""Run checks in parallel (they are independent) and keep their declared order in the report."""

from __future__ import annotations

import fnmatch
import importlib
import importlib.util
import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from pathlib import Path

import httpx

from conveyor import plugins
from conveyor.errors import InvalidInput
from conveyor.verify.checks import Check, CheckResult, Context, builtin_checks, project_checks, run_check
from conveyor.verify.contract import Contract, V2Settings
from conveyor.verify.targets import open_target
from conveyor.verify.task_contracts import for_task, served_metadata

PROJECT_CHECKS_FILE = "conveyor_checks.py"
GENERATION_TIMEOUT_S = 120.0  # an answer waits for a free slot of the engine behind the other prompts' runs


def load_custom_checks(project: Path | None, modules: list[str]) -> list[Check]:
    """Checks from outside Conveyor: installed plugins' ('conveyor.checks' entry points), then the
    project's conveyor_checks.py and --checks modules (those imported by an earlier call are not repeated).

    An installed checks plugin that failed to load stops here with its line: a gate that silently
    ran without a check the team installed would pass what it should judge."""
    failed = plugins.missing("checks")
    if failed is not None:
        raise failed
    before = {id(c) for c in project_checks() if not plugins.from_plugin("checks", getattr(c.fn, "__module__", ""))}
    if project is not None and (project / PROJECT_CHECKS_FILE).is_file():
        spec = importlib.util.spec_from_file_location(
            f"conveyor_project_checks_{abs(hash(project))}", project / PROJECT_CHECKS_FILE
        )
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module
        spec.loader.exec_module(module)
    for name in modules:
        try:
            importlib.import_module(name)
        except ImportError as exc:
            raise InvalidInput(f"--checks {name}: cannot import it: {exc}") from None
    return [c for c in project_checks() if id(c) not in before]


def select(checks: list[Check], skip: list[str]) -> tuple[list[Check], list[Check]]:
    """(to run, skipped by the contract or --skip); patterns like 'lint.*' work."""
    run: list[Check] = []
    skipped: list[Check] = []
    for item in checks:
        (skipped if any(fnmatch.fnmatch(item.id, pattern) for pattern in skip) else run).append(item)
    return run, skipped


def plan(ctx: Context, custom: list[Check], skip: list[str]) -> tuple[list[Check], list[Check]]:
    static_applies = ctx.project is not None or ctx.model_ref is not None
    checks = [
        c for c in builtin_checks(ctx.contract) if (ctx.base_url is not None if c.needs_server else static_applies)
    ]
    if ctx.contract.generation is not None:  # a generative server answers the OpenAI API, not /predict or v2
        checks = [c for c in checks if c.layer == "generation" or not c.needs_server]
    checks += [c for c in custom if ctx.base_url is not None or not c.needs_server]
    ids = [c.id for c in checks]
    duplicates = {i for i in ids if ids.count(i) > 1}
    if duplicates:
        raise InvalidInput(f"check ids must be unique; repeated: {sorted(duplicates)}")
    return select(checks, [*ctx.contract.skip, *skip])


def run_checks(ctx: Context, checks: list[Check], skipped: list[Check], parallel: int = 8) -> list[CheckResult]:
    with ThreadPoolExecutor(max_workers=max(1, parallel)) as pool:
        results = list(pool.map(lambda c: run_check(c, ctx), checks))
    results += [CheckResult(c.id, c.layer, "skipped", 0.0, "skipped by the contract or --skip") for c in skipped]
    return results


def with_v2_model(contract: Contract, model_name: str | None) -> Contract:
    """Name the served model for the v2 checks when the contract does not and the target tells us."""
    if contract.v2 is None and model_name:
        return contract.model_copy(update={"v2": V2Settings(model=model_name)})
    return contract


def discover_v2_model(url: str, client: httpx.Client) -> V2Settings | None:
    """The served model for the v2 checks, asked of the server itself (the model repository index).

    Servers without the extension, or with several models, give None: the contract must name one.
    """
    try:
        response = client.post(url.rstrip("/") + "/v2/repository/index", json={})
        index = response.json() if response.status_code == 200 else None
    except (httpx.HTTPError, ValueError):
        return None
    if not isinstance(index, list) or len(index) != 1 or not isinstance(index[0], dict) or not index[0].get("name"):
        return None
    name = str(index[0]["name"])
    text_input = "text"
    try:
        metadata = client.get(url.rstrip("/") + f"/v2/models/{name}").json()
        byte_inputs = [i["name"] for i in metadata.get("inputs", []) if i.get("datatype") == "BYTES"]
        if len(byte_inputs) == 1:
            text_input = byte_inputs[0]
    except (httpx.HTTPError, ValueError, AttributeError, KeyError, TypeError):
        pass
    return V2Settings(model=name, text_input=text_input)


def check_server(
    url: str | None,
    contract: Contract,
    *,
    project: Path | None = None,
    model_ref: str | None = None,
    model_path: Path | None = None,
    image: str | None = None,
    custom: list[Check] | None = None,
    skip: list[str] | None = None,
    parallel: int = 8,
    incumbent_url: str | None = None,
) -> list[CheckResult]:
    """Plan and run every applicable check against a server at ``url`` (None: static checks only);
    ``incumbent_url``: the version a generation contract's ``incumbent`` expectations compare with."""
    ctx = Context(
        url,
        contract,
        project=project.resolve() if project else None,
        model_ref=model_ref,
        model_path=model_path,
        image=image,
        incumbent_url=incumbent_url,
        timeout=GENERATION_TIMEOUT_S if contract.generation is not None else 30.0,
    )
    if url is not None and contract.v2 is None and contract.generation is None:
        discovered = discover_v2_model(url, ctx.client)
        if discovered is not None:
            ctx.contract = contract.model_copy(update={"v2": discovered})
    if url is not None and ctx.contract.v2 is not None:
        ctx.contract = for_task(ctx.contract, served_metadata(url, ctx.client, ctx.contract.v2))
    try:
        selected, skipped = plan(ctx, custom or [], skip or [])
        return run_checks(ctx, selected, skipped, parallel)
    finally:
        ctx.close()


def verify_target(
    target: str | None,
    contract: Contract,
    *,
    image: bool = False,
    timeout: float = 120,
    project: Path | None = None,
    model_ref: str | None = None,
    model_path: Path | None = None,
    custom: list[Check] | None = None,
    skip: list[str] | None = None,
    parallel: int = 8,
    on_notice: Callable[[str], None] | None = None,
    incumbent: str | None = None,
) -> list[CheckResult]:
    """``conveyor verify TARGET``: start or reach the target (and ``incumbent``), run the checks, clean up."""
    if target is None:
        return check_server(
            None,
            contract,
            project=project,
            model_ref=model_ref,
            model_path=model_path,
            custom=custom,
            skip=skip,
            parallel=parallel,
        )
    with ExitStack() as stack:
        running = stack.enter_context(open_target(target, image=image, timeout=timeout, on_notice=on_notice))
        incumbent_url = None
        if incumbent is not None:
            incumbent_url = stack.enter_context(open_target(incumbent, timeout=timeout, on_notice=on_notice)).url
        return check_server(
            running.url,
            with_v2_model(contract, running.model_name),
            project=project,
            model_ref=model_ref or running.model_ref,
            model_path=model_path or running.model_path,
            image=running.image,
            custom=custom,
            skip=skip,
            parallel=parallel,
            incumbent_url=incumbent_url,
        )
