"""Model converters, one module each; see :mod:`conveyor.convert.kinds` for what a module provides.

Every module in this package (and a plugin's ``conveyor.converters`` entry points, see
:mod:`conveyor.plugins`) is one kind of trained model Conveyor turns into ONNX behind the
conversion gate.  Nothing else lists them.
"""
