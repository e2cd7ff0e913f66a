"""Verification: automated checks of every layer a prediction request crosses.

A team adds its own check as a small function::

    from conveyor.verify import CheckFailed, Context, check

    @check("team.no_empty_answer", layer="response")
    def no_empty_answer(ctx: Context) -> str:
        body = ctx.post_json(["hello"]).json()
        if not body:
            raise CheckFailed("empty answer")
        return "answer is not empty"

placed in ``conveyor_checks.py`` of the project, a module named with
``--checks``, or a package's ``conveyor.checks`` entry point.
"""

from conveyor.verify.checks import Check, CheckFailed, CheckResult, Context, SkipCheck, check

__all__ = ["Check", "CheckFailed", "CheckResult", "Context", "SkipCheck", "check"]
