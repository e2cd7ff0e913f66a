"""Which converter takes a path: one module per kind of trained model, found through the plugins.

A converter is a module in ``conveyor/convert/converters/`` (or a plugin's ``conveyor.converters``
entry point) with these names; :func:`convert_model` asks them in ``ORDER`` and the first that
accepts the path converts it.  ``accepts`` decides from a file's suffix and first bytes (or a
folder's ``config.json``) without importing its framework::

    NAME = "pytorch"
    ORDER = 20

    def accepts(path: Path) -> bool: ...
    def convert(path: Path, out: Path, name: str, options: ConvertOptions) -> Conversion: ...
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from conveyor import plugins
from conveyor.convert.conversion import Conversion
from conveyor.convert.options import ConvertOptions


class Converter(Protocol):
    NAME: str
    ORDER: int  # asked in this order: the first that accepts a path converts it

    def accepts(self, path: Path) -> bool:
        """Whether PATH is this converter's (cheap: no framework import)."""

    def convert(self, path: Path, out: Path, name: str, options: ConvertOptions) -> Conversion:
        """Convert PATH into the model folder OUT through the gate, or raise ConversionRefused."""


def converters() -> list[Converter]:
    """Every converter, Conveyor's and plugins', in the order they are asked."""
    return sorted(plugins.modules("converters"), key=lambda m: (m.ORDER, m.NAME))


def converter_for(path: Path) -> Converter | None:
    """The converter that takes PATH (None: not a trained model Conveyor converts)."""
    return next((c for c in converters() if c.accepts(Path(path))), None)


def is_framework_model(path: Path) -> bool:
    """Whether PATH is a trained model Conveyor converts to ONNX at registration."""
    return converter_for(path) is not None


def convert_model(path: Path, out: Path, name: str, options: ConvertOptions | None = None) -> Conversion:
    """Convert PATH into the model folder OUT through its gate, or raise ConversionRefused."""
    from conveyor.errors import InvalidInput

    path = Path(path)
    converter = converter_for(path)
    if converter is None:
        raise plugins.missing("converters") or InvalidInput(f"{path.name}: not a model file Conveyor converts")
    return converter.convert(path, Path(out), name, options or ConvertOptions())
