"""Built-in pipeline step types, one module each; see :mod:`conveyor.pipeline.step_types`.

Each calls the same library code as its ``conveyor`` command, importing it lazily so that
validating a pipeline stays fast.
"""
