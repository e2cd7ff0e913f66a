"""Reports of a verification run: a rich table, JSON, and JUnit XML that CI shows as tests."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from conveyor.verify.checks import CheckResult

STYLES = {"passed": "green", "failed": "red", "error": "magenta", "skipped": "yellow"}


def summary(results: list[CheckResult]) -> dict[str, int]:
    counts = {"passed": 0, "failed": 0, "error": 0, "skipped": 0}
    for result in results:
        counts[result.status] += 1
    return counts


def ok(results: list[CheckResult]) -> bool:
    return all(r.status in ("passed", "skipped") for r in results) and any(r.status == "passed" for r in results)


def print_table(results: list[CheckResult], target: str, console: Console) -> None:
    table = Table(title=escape(f"conveyor verify {target}"), show_lines=False)
    table.add_column("check")
    table.add_column("layer")
    table.add_column("result")
    table.add_column("ms", justify="right")
    table.add_column("message", overflow="fold")
    for r in results:
        style = STYLES[r.status]
        table.add_row(
            escape(r.id), r.layer, f"[{style}]{r.status}[/{style}]", f"{r.duration * 1000:.0f}", escape(r.message)
        )
    console.print(table)
    counts = summary(results)
    console.print(", ".join(f"{n} {k}" for k, n in counts.items()), highlight=False)


def as_json(results: list[CheckResult], target: str) -> dict[str, Any]:
    return {"target": target, "ok": ok(results), "summary": summary(results), "checks": [r.as_dict() for r in results]}


def write_json(results: list[CheckResult], target: str, path: Path) -> None:
    path.write_text(json.dumps(as_json(results, target), indent=2))


def junit_xml(results: list[CheckResult], target: str) -> str:
    counts = summary(results)
    suite = ET.Element(
        "testsuite",
        name=f"conveyor verify {target}",
        tests=str(len(results)),
        failures=str(counts["failed"]),
        errors=str(counts["error"]),
        skipped=str(counts["skipped"]),
        time=f"{sum(r.duration for r in results):.3f}",
    )
    for r in results:
        case = ET.SubElement(suite, "testcase", classname=f"conveyor.{r.layer}", name=r.id, time=f"{r.duration:.3f}")
        if r.status == "failed":
            ET.SubElement(case, "failure", message=r.message, type="CheckFailed").text = r.message
        elif r.status == "error":
            ET.SubElement(case, "error", message=r.message, type="CheckError").text = r.message
        elif r.status == "skipped":
            ET.SubElement(case, "skipped", message=r.message)
        else:
            ET.SubElement(case, "system-out").text = r.message
    root = ET.Element("testsuites")
    root.append(suite)
    ET.indent(root)
    return ET.tostring(root, encoding="unicode", xml_declaration=True)


def write_junit(results: list[CheckResult], target: str, path: Path) -> None:
    path.write_text(junit_xml(results, target))
