"""The frameworks a trained tabular model can come from: each module turns its models into ONNX.

Every module in this package (and a plugin's ``conveyor.frameworks`` entry points, see
:mod:`conveyor.plugins`) exposes the same few names (``Framework`` below); nothing else lists
them.  They are tried in ``ORDER``, so that a framework whose models are also scikit-learn
estimators (XGBoost's and LightGBM's wrappers) is asked before scikit-learn itself."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from conveyor.serving.spec import Feature


@dataclass
class Loaded:
    """A trained model, loaded: what it is and what it records about its inputs and outputs."""

    framework: str
    framework_version: str
    model: Any
    task: str  # tabular-classification | tabular-regression
    labels: list[str]
    feature_names: list[str] | None  # as the model recorded them at training, if it did
    n_features: int
    converter: str = ""


class Framework(Protocol):
    NAME: str
    ORDER: int  # asked in this order

    def recognises(self, path: Any) -> bool:
        """Whether ``path`` is this framework's native model file (cheap: suffix and first bytes only)."""

    def load(self, path: Any) -> Loaded | None:
        """The model in ``path`` when it is this framework's (None: not ours)."""

    def accepts(self, model: Any) -> bool:
        """Whether an already loaded object (a pickle's content) is this framework's model."""

    def describe(self, model: Any) -> Loaded: ...

    def sample_column(self, feature: str, columns: list[str]) -> str | None:
        """The sample's column for the model's ``feature`` (None: the sample lacks it)."""

    def feature_types(self, loaded: Loaded, features: list[str]) -> dict[str, str]:
        """The type of each feature the model itself knows (e.g. categories of an encoder)."""

    def categories(self, loaded: Loaded) -> dict[str, list[str]]: ...

    def ranges(self, loaded: Loaded) -> dict[str, tuple[float, float]]:
        """Numeric ranges the model records (split thresholds, scaler statistics), for generated rows."""

    def to_onnx(self, loaded: Loaded, features: list[Feature]) -> Any:
        """The ONNX ModelProto, computing in float32.  A framework that can also convert in double
        lists ``PRECISIONS = ("float32", "double")`` and takes ``precision=`` here: the gate asks for
        double only where float32 changes the answers."""

    def predict(self, loaded: Loaded, frame: Any) -> np.ndarray:
        """The original model's scores on a pandas frame: probabilities [N, labels] or values [N, 1]."""


def frameworks() -> list[Framework]:
    """Every framework, Conveyor's and plugins', in the order they are asked."""
    from conveyor import plugins

    return sorted(plugins.modules("frameworks"), key=lambda m: (m.ORDER, m.NAME))


def version_of(distribution: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    for name in (distribution, f"{distribution}-cpu"):
        try:
            return version(name)
        except PackageNotFoundError:
            continue
    return "unknown"
