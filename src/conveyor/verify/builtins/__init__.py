"""Conveyor's own checks, registered with ``@check`` exactly as a project's checks are.

Every module in this package is imported by :func:`conveyor.verify.checks.builtin_checks`;
a new built-in check is one new module here (plus its test), nothing else lists them.
"""
