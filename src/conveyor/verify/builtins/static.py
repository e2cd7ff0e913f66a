"""Static checks of a delivery project: pinned dependencies, lint, the model's digest."""

from __future__ import annotations

import json
import subprocess
import tomllib
from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement

from conveyor.extras import needs
from conveyor.verify.checks import CheckFailed, Context, SkipCheck, check


def _project(ctx: Context) -> Path:
    if ctx.project is None:
        raise SkipCheck("no project folder (--project)")
    return ctx.project


def _logical_lines(path: Path) -> list[str]:
    """Requirement lines with backslash continuations joined and comments removed."""
    lines: list[str] = []
    pending = ""
    for raw in path.read_text().splitlines():
        line = raw.split(" #", 1)[0].rstrip() if not raw.lstrip().startswith("#") else ""
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        lines.append((pending + line).strip())
        pending = ""
    if pending:
        lines.append(pending.strip())
    return [line for line in lines if line]


def read_requirements(path: Path, seen: set[Path] | None = None) -> list[tuple[str, str, bool]]:
    """(source, requirement text, has hashes) for every requirement in a requirements file, following -r."""
    seen = seen or set()
    if path.resolve() in seen:
        return []
    seen.add(path.resolve())
    found = []
    for line in _logical_lines(path):
        if line.startswith(("-r ", "--requirement ")):
            found += read_requirements(path.parent / line.split(maxsplit=1)[1], seen)
            continue
        if line.startswith("-"):
            continue  # index options, -e, -c: not requirements of this file
        found.append((path.name, line.split(" --hash", 1)[0].strip(), "--hash" in line))
    return found


def dependency_files(project: Path) -> list[Path]:
    files = [
        *sorted(project.glob("requirements*.txt")),
        *sorted(project.glob("requirements*.lock")),
        *sorted(project.glob("requirements/*.txt")),
    ]
    return [f for f in files if f.is_file()]


def _pinned(text: str) -> bool:
    requirement = Requirement(text)
    specs = list(requirement.specifier)
    return bool(requirement.url) or (
        len(specs) == 1 and specs[0].operator in ("==", "===") and "*" not in specs[0].version
    )


@check("deps.pinned", "static", "every dependency pinned to an exact version", needs_server=False)
def deps_pinned(ctx: Context) -> str:
    project = _project(ctx)
    entries: list[tuple[str, str, bool]] = []
    for path in dependency_files(project):
        entries += read_requirements(path)
    pyproject = project / "pyproject.toml"
    if pyproject.is_file() and not entries:
        data = tomllib.loads(pyproject.read_text())
        entries += [("pyproject.toml", dep, False) for dep in data.get("project", {}).get("dependencies", [])]
    if not entries:
        raise SkipCheck("no requirements*.txt or pyproject.toml dependencies in the project")
    unpinned, invalid = [], []
    for source, text, _ in entries:
        try:
            if not _pinned(text):
                unpinned.append(f"{text or '?'} ({source})")
        except InvalidRequirement:
            invalid.append(f"{text} ({source})")
    if invalid:
        raise CheckFailed(f"unreadable requirement(s): {', '.join(invalid[:5])}")
    if unpinned:
        more = f" and {len(unpinned) - 8} more" if len(unpinned) > 8 else ""
        raise CheckFailed(
            f"{len(unpinned)} of {len(entries)} dependencies not pinned to an exact version (==): "
            f"{', '.join(unpinned[:8])}{more}"
        )
    hashed = sum(1 for *_, has_hash in entries if has_hash)
    note = "all with hashes" if hashed == len(entries) else f"{hashed} with hashes (hashes are optional, recommended)"
    return f"{len(entries)} dependencies pinned exactly; {note}"


@check("lint.ruff", "static", "the project's Python code passes ruff", needs_server=False)
def lint_ruff(ctx: Context) -> str:
    project = _project(ctx)
    with needs("lint", "the lint.ruff check"):
        from ruff.__main__ import find_ruff_bin

    result = subprocess.run(
        [find_ruff_bin(), "check", "--output-format", "json", "--exit-zero", "--no-cache", str(project)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    if result.returncode != 0:
        raise CheckFailed(f"ruff could not run: {result.stderr.strip()[:300]}")
    findings = json.loads(result.stdout or "[]")
    if findings:
        root = project.resolve()
        shown = []
        for finding in findings[:5]:
            path = Path(finding["filename"])
            where = path.relative_to(root) if path.is_absolute() and path.is_relative_to(root) else path
            shown.append(f"{where}:{finding['location']['row']}: {finding['code']} {finding['message']}")
        raise CheckFailed(f"{len(findings)} ruff finding(s): " + "; ".join(shown))
    return "ruff found nothing"


@check("model.digest", "static", "the model files match their registry version", needs_server=False)
def model_digest(ctx: Context) -> str:
    if ctx.model_ref is None or ctx.model_path is None:
        raise SkipCheck("no registry reference and local model path to compare (--model-ref, --model-path)")
    from conveyor.digest import sha256_file
    from conveyor.registry.config import open_registry

    version = open_registry().resolve(ctx.model_ref)
    local = Path(ctx.model_path)
    problems = []
    for entry in version.files:
        path = local / entry.path if local.is_dir() else local
        if local.is_file() and entry.path != local.name:
            continue
        if not path.is_file():
            problems.append(f"{entry.path}: missing locally")
            continue
        digest, _ = sha256_file(path)
        if digest != entry.sha256:
            problems.append(f"{entry.path}: sha256 {digest[:12]}… differs from {version.ref}'s {entry.sha256[:12]}…")
    if problems:
        raise CheckFailed("; ".join(problems))
    return f"{local} matches {version.ref} (sha256:{version.digest[:12]}…)"
