"""The layout rules of the package, checked on its source: who may import whom.

* nothing outside ``conveyor.cli`` imports the CLI (the library never depends on its front end);
* ``conveyor.registry`` imports nothing from ``conveyor.serving`` (serving builds on the registry);
* the imports between modules form no cycle, counting imports inside functions too (a cycle
  dodged by a late import is still a cycle);
* the router (the rollouts' data plane) imports nothing from ``conveyor.rollout`` (the control plane);
* the front ends (the CLI, ``conveyor.api``, the dashboard) reach rollouts through
  ``conveyor.rollout.service`` only, never ``rollout.plan`` or the controller's commands;
* extension modules (checks, step types, metrics, engines, converters, frameworks) are found by ``conveyor.plugins``,
  never imported by name from outside their package, and only ``conveyor.plugins`` walks packages;
* what the CLI and the model server import at start-up (and every extension module, which
  ``conveyor.plugins`` imports with its table) imports no optional dependency at module level:
  the extras of ``pyproject.toml`` are imported where they are used, through ``conveyor.extras``;
* no module is over 400 lines.

``docs/architecture.md`` draws the layers these rules keep apart.
"""

from __future__ import annotations

import ast
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parent.parent / "src"
PACKAGE = "conveyor"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path: Path, module: str) -> set[str]:
    """Conveyor modules ``path`` imports (at any depth of the file, but not under TYPE_CHECKING)."""
    tree = ast.parse(path.read_text(), str(path))
    typing_only: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            typing_only.update(id(child) for child in ast.walk(node))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in typing_only:
            continue
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(
                    package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else [])
                )
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return {name for name in found if name == PACKAGE or name.startswith(PACKAGE + ".")}


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    modules = {_module_name(p): p for p in (SRC / PACKAGE).rglob("*.py")}
    edges: dict[str, set[str]] = {}
    for name, path in modules.items():
        # "from conveyor.x import y" names module conveyor.x.y only when that module exists
        edges[name] = {target for target in _imports(path, name) if target in modules and target != name}
    return edges


def test_nothing_outside_the_cli_imports_the_cli(graph: dict[str, set[str]]) -> None:
    offenders = {
        module: sorted(t for t in targets if t.startswith("conveyor.cli"))
        for module, targets in graph.items()
        if not module.startswith("conveyor.cli") and module != "conveyor.__main__"  # the CLI's entry point
    }
    assert {m: t for m, t in offenders.items() if t} == {}


def test_the_registry_imports_nothing_from_serving(graph: dict[str, set[str]]) -> None:
    offenders = {
        module: sorted(t for t in targets if t.startswith("conveyor.serving"))
        for module, targets in graph.items()
        if module.startswith("conveyor.registry")
    }
    assert {m: t for m, t in offenders.items() if t} == {}


def test_there_are_no_import_cycles(graph: dict[str, set[str]]) -> None:
    # a package's __init__ is imported with each of its modules: an edge into a package's own
    # submodule from its __init__ is the package structure, not a cycle
    def edges(module: str) -> set[str]:
        return {t for t in graph[module] if not (module + ".").startswith(t + ".") and not t.startswith(module + ".")}

    cycles: list[list[str]] = []
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(module: str) -> None:
        state[module] = 1
        stack.append(module)
        for target in sorted(edges(module)):
            if state.get(target) == 1:
                cycles.append([*stack[stack.index(target) :], target])
            elif target not in state:
                visit(target)
        stack.pop()
        state[module] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module)
    assert cycles == []


FRONT_ENDS = ("conveyor.cli", "conveyor.api", "conveyor.ui")


def test_front_ends_reach_rollouts_through_the_service(graph: dict[str, set[str]]) -> None:
    offenders = {
        module: sorted(t for t in targets if t == "conveyor.rollout.plan")
        for module, targets in graph.items()
        if module.startswith(FRONT_ENDS) and module != "conveyor.cli.rollout"  # its pick_service, for views
    }
    assert {m: t for m, t in offenders.items() if t} == {}


EXTENSION_PACKAGES = (
    "conveyor.verify.builtins",
    "conveyor.pipeline.steps",
    "conveyor.rollout.analysis.metrics",
    "conveyor.engines",
    "conveyor.convert.converters",
    "conveyor.convert.frameworks",
)


def test_extension_modules_are_found_not_imported_by_name(graph: dict[str, set[str]]) -> None:
    def extension(target: str) -> bool:
        package, _, leaf = target.rpartition(".")
        return package in EXTENSION_PACKAGES and leaf != "base"  # an extension point's interface is public

    offenders = {
        module: sorted(t for t in targets if extension(t) and not module.startswith(t.rpartition(".")[0]))
        for module, targets in graph.items()
    }
    assert {m: t for m, t in offenders.items() if t} == {}
    walkers = [p for p in (SRC / PACKAGE).rglob("*.py") if "pkgutil" in _top_imports(p)]
    assert [str(p.relative_to(SRC)) for p in walkers] == ["conveyor/plugins.py"]


def _top_imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_the_router_knows_nothing_of_rollouts(graph: dict[str, set[str]]) -> None:
    offenders = {
        module: sorted(t for t in targets if t.startswith("conveyor.rollout"))
        for module, targets in graph.items()
        if module.startswith("conveyor.router")
    }
    assert {m: t for m, t in offenders.items() if t} == {}


def test_no_module_is_over_400_lines() -> None:
    """A module that grows past this holds more than one idea: split it where the ideas part."""
    long = {
        str(p.relative_to(SRC)): n
        for p in (SRC / PACKAGE).rglob("*.py")
        if (n := len(p.read_text().splitlines())) > 400
    }
    assert long == {}


START_UP = ("conveyor.cli.main", "conveyor.serving.__main__", "conveyor.api")


def _module_level_imports(path: Path, module: str) -> set[str]:
    """Every module ``path`` imports when it is imported itself: not inside functions or TYPE_CHECKING."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()

    def walk(nodes: list[ast.stmt]) -> None:
        for node in nodes:
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
                continue
            if isinstance(node, ast.Import):
                found.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parts = package.split(".")
                    base = ".".join(parts[: len(parts) - node.level + 1] + ([base] if base else []))
                found.add(base)
                found.update(f"{base}.{alias.name}" for alias in node.names)
            for block in ("body", "orelse", "finalbody", "handlers"):
                walk(getattr(node, block, None) or [])

    walk(ast.parse(path.read_text(), str(path)).body)
    return found


def _extras_modules() -> dict[str, str]:
    """Top-level import name -> the extra that installs it, from pyproject.toml's declaration.

    A distribution the core brings anyway (through its dependencies) is not an extra's."""
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    from conveyor.packaging.requirements import closure, image_roots

    project = tomllib.loads((SRC.parent / "pyproject.toml").read_text())["project"]
    core = {pin.name for pin in closure(image_roots())}
    modules_of: dict[str, set[str]] = {}
    for module, dists in packages_distributions().items():
        for dist in dists:
            modules_of.setdefault(canonicalize_name(dist), set()).add(module)
    found: dict[str, str] = {}
    for extra, requirements in project["optional-dependencies"].items():
        if extra in ("dev", "bench", "reference"):  # the project's own tooling, never imported by conveyor
            continue
        for text in requirements:
            name = canonicalize_name(Requirement(text).name)
            if name != PACKAGE + "-ml" and name not in core:
                found.update({module: extra for module in modules_of.get(name, set())})
    return found


def test_start_up_imports_no_optional_dependency() -> None:
    modules = {_module_name(p): p for p in (SRC / PACKAGE).rglob("*.py")}
    imports = {name: _module_level_imports(path, name) for name, path in modules.items()}
    extensions = [m for m in modules if m.rpartition(".")[0] in EXTENSION_PACKAGES]
    extras = _extras_modules()
    assert {"scipy", "boto3", "aiohttp", "onnx", "PIL", "model_signing", "ruff"} <= set(extras)
    seen: set[str] = set()
    pending = [*START_UP, *extensions]
    while pending:
        module = pending.pop()
        if module in seen or module not in modules:
            continue
        seen.add(module)
        parents = [".".join(module.split(".")[:i]) for i in range(1, module.count(".") + 1)]
        pending += parents + [t for t in imports[module] if t in modules]
    offenders = {
        module: sorted(f"{t} [{extras[t.split('.')[0]]}]" for t in imports[module] if t.split(".")[0] in extras)
        for module in sorted(seen)
    }
    assert {m: t for m, t in offenders.items() if t} == {}
