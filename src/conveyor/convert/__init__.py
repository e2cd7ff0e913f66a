"""Models as teams train them, into the one servable form: ONNX, behind a conversion gate.

``conveyor models register PATH`` takes a trained model file (a scikit-learn estimator or
Pipeline saved with joblib or pickle, an XGBoost or LightGBM model, native or its sklearn
wrapper, a TorchScript or torch.export file) or a Hugging Face transformers folder, and
converts it with the ecosystem's converters (skl2onnx, onnxmltools, torch.onnx).  Nothing is
registered unless the original model and the ONNX model answer the same rows the same way
(``gate``): the user's ``--sample``, or rows generated from what the model itself records
about its inputs.  The version then holds ``model.onnx``, a ``model.yaml`` with the task and
the typed features, and the original file, with the framework and its version recorded.

Loading a pickle runs code.  This only happens here, in the user's own process, on a file the
user named; the registry server never unpickles anything, and images never carry a training
framework (the converters are the ``conveyor-ml[sklearn]``, ``[xgboost]``, ``[lightgbm]``,
``[torch]`` and ``[huggingface]`` extras, not dependencies of the server).

One module per kind of model under ``converters/`` and one per tabular framework under
``frameworks/``, found through :mod:`conveyor.plugins` (plugin packages add theirs as
``conveyor.converters`` and ``conveyor.frameworks`` entry points): adding one is a new module
plus its test.
"""

from __future__ import annotations

from conveyor.convert.conversion import Conversion
from conveyor.convert.in_memory import convert_module
from conveyor.convert.kinds import convert_model, is_framework_model
from conveyor.convert.options import ConvertOptions

__all__ = ["Conversion", "ConvertOptions", "convert_model", "convert_module", "is_framework_model"]
