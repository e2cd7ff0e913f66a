"""What a check is, what it returns, and the context it runs in."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import httpx

from conveyor.verify.contract import Contract

Status = Literal["passed", "failed", "error", "skipped"]
LAYERS = ("http", "route", "parse", "predict", "response", "errors", "latency", "v2", "generation", "static")


class CheckFailed(Exception):
    """The thing checked is wrong; the message tells a person exactly what."""


class SkipCheck(Exception):
    """The check does not apply here (the message says why)."""


@dataclass
class Context:
    """What checks may use: the server under test, the contract and the project."""

    base_url: str | None
    contract: Contract
    project: Path | None = None
    model_ref: str | None = None
    model_path: Path | None = None
    image: str | None = None  # the image the server under test runs, when verifying an image
    incumbent_url: str | None = None  # a generative version's incumbent, for the gate's pairwise comparison
    timeout: float = 30.0
    client: httpx.Client = field(init=False)

    def __post_init__(self) -> None:
        self.client = httpx.Client(timeout=self.timeout, limits=httpx.Limits(max_connections=64))

    def url(self, path: str) -> str:
        if self.base_url is None:
            raise SkipCheck("no server under test")
        return self.base_url.rstrip("/") + path

    def post_json(self, payload: Any, path: str | None = None) -> httpx.Response:
        """POST a JSON payload to the contract's endpoint (or ``path``)."""
        return self.client.request(self.contract.method, self.url(path or self.contract.endpoint), json=payload)

    def close(self) -> None:
        self.client.close()


CheckFn = Callable[[Context], str | None]


@dataclass(frozen=True)
class Check:
    id: str
    layer: str
    description: str
    fn: CheckFn
    needs_server: bool = True


@dataclass
class CheckResult:
    id: str
    layer: str
    status: Status
    duration: float
    message: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "layer": self.layer,
            "status": self.status,
            "duration_s": round(self.duration, 4),
            "message": self.message,
        }


def run_check(item: Check, ctx: Context) -> CheckResult:
    started = time.perf_counter()
    try:
        message = item.fn(ctx) or "ok"
        status: Status = "passed"
    except CheckFailed as exc:
        status, message = "failed", str(exc)
    except SkipCheck as exc:
        status, message = "skipped", str(exc)
    except httpx.TransportError as exc:
        status, message = "failed", f"cannot reach the server: {type(exc).__name__}: {exc}"
    except Exception as exc:  # a broken check is an error, not a failure of the thing checked
        status, message = "error", f"{type(exc).__name__}: {exc}"
    return CheckResult(item.id, item.layer, status, time.perf_counter() - started, message)


#: Every check registered with @check: Conveyor's own (conveyor.verify.builtins) and projects'.
REGISTERED: list[Check] = []
#: Functions that make checks from a contract (one per golden example, one per bad input).
FAMILIES: list[Callable[[Contract], list[Check]]] = []
BUILTIN_PACKAGE = "conveyor.verify.builtins"


def check(
    check_id: str, layer: str = "predict", description: str = "", needs_server: bool = True
) -> Callable[[CheckFn], CheckFn]:
    """Register a check: ``fn(ctx) -> message``; raise CheckFailed to fail it, SkipCheck when it does not apply."""

    def register(fn: CheckFn) -> CheckFn:
        REGISTERED.append(Check(check_id, layer, description or (fn.__doc__ or "").strip(), fn, needs_server))
        return fn

    return register


def check_family(fn: Callable[[Contract], list[Check]]) -> Callable[[Contract], list[Check]]:
    """Register a function that makes checks from the contract (run against a server)."""
    FAMILIES.append(fn)
    return fn


def _is_builtin(item: Check) -> bool:
    return getattr(item.fn, "__module__", "").startswith(BUILTIN_PACKAGE + ".")


def load_builtin_checks() -> None:
    """Import Conveyor's checks and installed plugins' once (each module registers its checks)."""
    from conveyor import plugins

    plugins.load("checks")


def find_check(check_id: str) -> Check:
    """The registered check ``check_id`` (Conveyor's or a plugin's); KeyError naming it otherwise."""
    load_builtin_checks()
    for item in REGISTERED:
        if item.id == check_id:
            return item
    from conveyor import plugins

    raise plugins.missing("checks") or KeyError(f"no check {check_id!r}")


def builtin_checks(contract: Contract) -> list[Check]:
    """Conveyor's checks for this contract, in the order of the layers a request crosses."""
    load_builtin_checks()
    found = [c for c in REGISTERED if _is_builtin(c)] + [c for family in FAMILIES for c in family(contract)]
    rank = {layer: index for index, layer in enumerate(LAYERS)}
    return sorted(found, key=lambda c: rank.get(c.layer, len(LAYERS)))


def project_checks() -> list[Check]:
    """The checks projects and plugins registered (in registration order)."""
    load_builtin_checks()
    return [c for c in REGISTERED if not _is_builtin(c)]
