"""Optional dependencies: a feature beyond serving names the extra that installs it, in one line.

``pip install conveyor-ml`` brings what ``conveyor serve``, the registry and the CLI need; every
other feature's libraries are an extra in ``pyproject.toml`` (``[monitor]``, ``[s3]``,
``[supply-chain]``...), the one declaration of what each needs.  Code that crosses into such a
feature imports through here, so a missing library is a :class:`~conveyor.errors.MissingExtra`
naming the extra and the exact command instead of a traceback::

    with needs("monitor", "conveyor monitor"):
        from scipy.stats import ks_2samp        # typed imports, as usual

    boto3 = require("boto3", extra="s3", for_="a registry on S3")

Modules that the CLI or the model server import at start-up import an extra's libraries only
inside the functions that use them (``tests/test_architecture.py`` holds that line).
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from contextlib import contextmanager
from types import ModuleType

from conveyor.errors import MissingExtra

# PyPI's torch is the CUDA build (several GB); an extra that brings torch names PyTorch's CPU index, so the
# hint a user copies installs the CPU wheel (the one this project's lock pins, torch-cpu.txt).  The extra
# index keeps PyPI as the source of everything else.
TORCH_CPU_INDEX = "https://download.pytorch.org/whl/cpu"
BRINGS_TORCH = frozenset({"torch", "huggingface", "frameworks"})


def install_command(extra: str) -> str:
    command = f"pip install 'conveyor-ml[{extra}]'"
    return f"{command} --extra-index-url {TORCH_CPU_INDEX}" if extra in BRINGS_TORCH else command


def _missing(extra: str, for_: str, exc: ModuleNotFoundError) -> MissingExtra:
    missing = (exc.name or "a module").split(".")[0]
    return MissingExtra(f"{for_} needs the '{extra}' extra ({missing} is not installed): {install_command(extra)}")


@contextmanager
def needs(extra: str, for_: str) -> Iterator[None]:
    """Imports in this block belong to ``extra``; one missing is a MissingExtra for ``for_``."""
    try:
        yield
    except ModuleNotFoundError as exc:
        raise _missing(extra, for_, exc) from exc


def require(module: str, *, extra: str, for_: str) -> ModuleType:
    """``module`` imported, or a MissingExtra naming ``extra`` and the pip command that installs it."""
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        raise _missing(extra, for_, exc) from exc
