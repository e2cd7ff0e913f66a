"""An in-memory ``torch.nn.Module`` into a model folder: saved as a ``torch.export`` program, then
converted like any ``.pt2`` file (``conveyor.convert.convert_module``, the Python API)."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from conveyor.convert.conversion import Conversion
from conveyor.convert.kinds import convert_model
from conveyor.convert.options import ConvertOptions
from conveyor.extras import require


def convert_module(module: Any, example: Any, out: str | Path, name: str, **options: Any) -> Conversion:
    """Convert ``module`` with one example input (its batch axis first) into a model folder
    ``conveyor models register`` takes.  ``options`` are ConvertOptions' fields (labels, mean, std,
    task, agreement, tolerance, positive_label)."""
    torch = require("torch", extra="torch", for_="converting this model")
    module = module.eval()
    batch = example if example.shape[0] > 1 else torch.cat([example, example])  # a batch of 1 would fix the axis
    program = torch.export.export(module, (batch,), dynamic_shapes=({0: torch.export.Dim("batch")},))
    with tempfile.TemporaryDirectory(prefix="conveyor-module-") as scratch:
        saved = Path(scratch) / f"{name}.pt2"
        torch.export.save(program, str(saved))
        return convert_model(saved, Path(out), name, ConvertOptions(**options))
