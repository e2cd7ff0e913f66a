"""Compare two runs of the test suite recorded by benchmarks/suite/cpu_plugin.py:

    .venv/bin/python -m benchmarks.suite BEFORE AFTER [--top 10]

The question a restructuring must answer is whether the tests cost more, not whether there are
more of them: the table sets the CPU of the tests both runs hold (the same node ids) beside the
CPU of the tests only one holds, by module, and lists the tests that grew and shrank the most.
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from pathlib import Path

from rich.console import Console
from rich.table import Table

console = Console(width=140)


def load(folder: Path) -> dict[str, float]:
    """Each test's CPU seconds (the worker's own and its reaped children's)."""
    tests: dict[str, float] = {}
    for path in sorted(folder.glob("*.jsonl")):
        for line in path.read_text().splitlines():
            record = json.loads(line)
            tests[record["id"]] = record["own"] + record["children"]
    return tests


def machine(folder: Path) -> dict[str, float]:
    path = folder / "machine.json"
    return json.loads(path.read_text()) if path.is_file() else {}


def by_module(tests: dict[str, float], ids: set[str]) -> Counter[str]:
    modules: Counter[str] = Counter()
    for test_id in ids:
        modules[test_id.split("::")[0]] += tests[test_id]
    return modules


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.suite", description=__doc__.split("\n")[0])
    parser.add_argument("before", type=Path)
    parser.add_argument("after", type=Path)
    parser.add_argument("--top", type=int, default=10, help="how many modules and tests to list (default: 10)")
    args = parser.parse_args(argv)
    before, after = load(args.before), load(args.after)
    common = set(before) & set(after)
    added_ids = set(after) - common
    machines = machine(args.before), machine(args.after)

    summary = Table(title="the suite, before and after (CPU seconds)")
    for column in ("", "before", "after", "after / before"):
        summary.add_column(column, justify="right" if column else "left")
    rows: list[tuple[str, float, float]] = [
        ("tests", len(before), len(after)),
        ("CPU of the tests both hold", sum(before[t] for t in common), sum(after[t] for t in common)),
        (
            "CPU of the tests only this run holds",
            sum(before[t] for t in set(before) - common),
            sum(after[t] for t in added_ids),
        ),
    ]
    for key, name in (("wall", "pytest wall time"), ("machine_busy_cpu", "machine busy CPU")):
        if all(key in measured for measured in machines):
            rows.append((name, machines[0][key], machines[1][key]))
    for name, old, new in rows:
        summary.add_row(name, f"{old:.0f}", f"{new:.0f}", f"{new / old:.2f}" if old else "-")
    console.print(summary)

    added = Table(title="tests only in AFTER, by module (CPU seconds)")
    added.add_column("CPU", justify="right")
    added.add_column("module")
    for module, seconds in by_module(after, added_ids).most_common(args.top):
        added.add_row(f"{seconds:.1f}", module)
    console.print(added)

    changed = Table(title="tests in both: the largest changes (CPU seconds)")
    for column in ("before", "after", "test"):
        changed.add_column(column, justify="left" if column == "test" else "right")
    ordered = sorted(common, key=lambda t: after[t] - before[t])
    for test_id in [*ordered[-args.top :][::-1], *ordered[: args.top]]:
        changed.add_row(f"{before[test_id]:.1f}", f"{after[test_id]:.1f}", test_id)
    console.print(changed)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
