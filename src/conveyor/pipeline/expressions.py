"""``${{ ... }}`` substitution and ``if:`` conditions, evaluated safely (no Python ``eval``).

Expressions read ``params.NAME``, ``steps.STEP.outputs.KEY``, ``steps.STEP.outcome``
(success, failure, skipped, cached), ``run.id``, ``run.artifacts`` and ``env.NAME``; they
compare with ``== != < <= > >= in``, combine with ``and or not``, and call ``success()``
(every needed step succeeded: the default), ``failure()`` (one of them failed) or ``always()``.
A missing field reads as null, as in GitHub Actions.
"""

from __future__ import annotations

import ast
import operator
import re
from typing import Any

from conveyor.errors import InvalidInput
from conveyor.pipeline.history import SUCCEEDED

SUBSTITUTION = re.compile(r"\$\{\{\s*((?:(?!\}\}).)+?)\s*\}\}")
COMPARISONS = {
    ast.Eq: operator.eq,
    ast.NotEq: operator.ne,
    ast.Lt: operator.lt,
    ast.LtE: operator.le,
    ast.Gt: operator.gt,
    ast.GtE: operator.ge,
    ast.In: lambda a, b: a in b,
    ast.NotIn: lambda a, b: a not in b,
}
LITERALS = {"true": True, "false": False, "null": None}


class Evaluator:
    def __init__(self, context: dict[str, Any], needs_outcomes: list[str] | None = None) -> None:
        self.context = context
        self.needs_outcomes = needs_outcomes or []

    def evaluate(self, text: str) -> Any:
        try:
            tree = ast.parse(text.strip(), mode="eval")
        except SyntaxError as exc:
            raise InvalidInput(f"expression {text!r}: {exc.msg}") from None
        return self._eval(tree.body, text)

    def _eval(self, node: ast.AST, text: str) -> Any:
        if isinstance(node, ast.Constant):
            return node.value
        if isinstance(node, ast.Name):
            if node.id in LITERALS:
                return LITERALS[node.id]
            if node.id not in self.context:
                raise InvalidInput(f"expression {text!r}: unknown name {node.id!r} (use params, steps, run or env)")
            return self.context[node.id]
        if isinstance(node, ast.Attribute):
            return _get(self._eval(node.value, text), node.attr)
        if isinstance(node, ast.Subscript):
            return _get(self._eval(node.value, text), self._eval(node.slice, text))
        if isinstance(node, ast.BoolOp):
            values = (self._eval(v, text) for v in node.values)
            return all(values) if isinstance(node.op, ast.And) else any(values)
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
            return not self._eval(node.operand, text)
        if isinstance(node, ast.Compare):
            left = self._eval(node.left, text)
            for op, comparator in zip(node.ops, node.comparators, strict=True):
                right = self._eval(comparator, text)
                try:
                    if not COMPARISONS[type(op)](left, right):
                        return False
                except TypeError:
                    return False
                left = right
            return True
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and not node.args:
            outcomes = self.needs_outcomes
            if node.func.id == "success":
                return all(o in SUCCEEDED for o in outcomes)
            if node.func.id == "failure":
                return any(o == "failure" for o in outcomes)
            if node.func.id == "always":
                return True
        raise InvalidInput(f"expression {text!r}: unsupported syntax {type(node).__name__}")


def _get(value: Any, key: Any) -> Any:
    if isinstance(value, dict):
        return value.get(key)
    if isinstance(value, list | tuple) and isinstance(key, int) and -len(value) <= key < len(value):
        return value[key]
    return None


def substitute(value: Any, evaluator: Evaluator) -> Any:
    """Replace ``${{ expr }}`` in strings (recursively in lists and dicts); a whole-string expression keeps its type."""
    if isinstance(value, str):
        whole = SUBSTITUTION.fullmatch(value.strip())
        if whole:
            return evaluator.evaluate(whole.group(1))
        return SUBSTITUTION.sub(lambda m: _text(evaluator.evaluate(m.group(1))), value)
    if isinstance(value, list):
        return [substitute(v, evaluator) for v in value]
    if isinstance(value, dict):
        return {k: substitute(v, evaluator) for k, v in value.items()}
    return value


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def condition(text: str, evaluator: Evaluator) -> bool:
    """An ``if:``; it may be wrapped in ``${{ }}``."""
    inner = SUBSTITUTION.fullmatch(text.strip())
    return bool(evaluator.evaluate(inner.group(1) if inner else text))
