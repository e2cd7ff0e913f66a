"""scikit-learn models saved with skops (MLflow 3's default format), loaded without running a pickle.

skops refuses every type it was not told to trust; a model file here is trusted for the types that come
from the libraries that make models (scikit-learn, NumPy, SciPy, XGBoost, LightGBM), and refused,
naming them, for any other (a custom step's class would run its code as a pickle does).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from conveyor.errors import InvalidInput
from conveyor.extras import require

SKOPS = ".skops"
TRUSTED_ROOTS = ("sklearn", "numpy", "scipy", "xgboost", "lightgbm", "builtins", "collections", "functools")


def load_skops(path: Path) -> Any:
    """The model in a ``.skops`` file."""
    skops_io = require("skops.io", extra="mlflow", for_="reading a .skops model")
    try:
        untrusted = skops_io.get_untrusted_types(file=path)
        refused = [t for t in untrusted if t.split(".", 1)[0] not in TRUSTED_ROOTS]
        if refused:
            raise InvalidInput(
                f"{path.name} holds types skops does not trust and Conveyor will not load: {', '.join(refused[:5])} "
                "(save the model with those steps from an installed package, or register a joblib file)"
            )
        return skops_io.load(path, trusted=untrusted)
    except InvalidInput:
        raise
    except Exception as exc:  # skops raises its own and zipfile's errors
        raise InvalidInput(f"{path.name}: not a skops file ({exc})") from None
