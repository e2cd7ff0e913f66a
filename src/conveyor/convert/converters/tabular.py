"""A trained tabular model file (scikit-learn, XGBoost, LightGBM: ``frameworks/``) to a folder
``conveyor serve`` takes, through the gate.

The steps, each refusing with a clear message rather than registering something doubtful:
load the file (the framework modules decide whose it is), find the features (the model's own
names, or the sample's columns, typed by the sample or by what the model records), convert to
ONNX, score the same rows with the original and with the ONNX model (through the server's own
feeding code, so the gate checks what will be served), compare, and only then write
``model.onnx``, ``model.yaml`` and the original file.
"""

from __future__ import annotations

import json
import pickle
import shutil
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from conveyor.convert.conversion import Conversion, kept_original, write_folder
from conveyor.convert.frameworks import Framework, Loaded, frameworks
from conveyor.convert.gate import (
    DEFAULT_AGREEMENT,
    DEFAULT_TOLERANCE,
    ConversionRefused,
    GateReport,
    check_conversion,
    headline,
    rows_shown,
)
from conveyor.convert.options import ConvertOptions
from conveyor.convert.probes import probe_features
from conveyor.convert.skops_files import SKOPS, load_skops
from conveyor.errors import InvalidInput
from conveyor.extras import require
from conveyor.precision import Precision
from conveyor.serving.spec import Feature, ModelSpec, ResolvedModel, Source

NAME = "tabular"
ORDER = 30
PICKLES = (".joblib", ".pkl", ".pickle")
GENERATED_ROWS = 500


def accepts(path: Path) -> bool:
    """Whether PATH is a pickle or a framework's native model file (cheap: suffix and first bytes only)."""
    path = Path(path)
    if not path.is_file():
        return False
    return path.suffix in (*PICKLES, SKOPS) or any(framework.recognises(path) for framework in frameworks())


def convert(path: Path, out: Path, name: str, options: ConvertOptions) -> Conversion:
    """The converter's entry: refuses the options only a PyTorch model takes, then :func:`convert_tabular`."""
    unused = [n for n in ("input_shape", "task") if getattr(options, n)]
    if unused:
        flags = ", ".join("--" + n.replace("_", "-") for n in unused)
        raise InvalidInput(f"{flags}: for a PyTorch model only; a tabular model records its inputs")
    return convert_tabular(
        path, out, name, options.sample, options.agreement, options.tolerance, options.positive_label, options.labels,
        options.precision,
    )  # fmt: skip


@contextmanager
def importable_beside(path: Path) -> Iterator[None]:
    """The working folder and ``path``'s folder on the import path while the pickle loads.

    A Pipeline with a custom transformer pickles a reference to its module (``my_steps.MyScaler``);
    ``python train.py`` found that module beside the script, so unpickling must find it where the
    user is (the working folder) or beside the model file.  Both are appended, so a local file never
    shadows an installed package, and removed again afterwards."""
    searched = dict.fromkeys((str(Path.cwd()), str(path.resolve().parent)))
    added = [folder for folder in searched if folder not in sys.path]
    sys.path.extend(added)
    try:
        yield
    finally:
        for folder in added:
            sys.path.remove(folder)


def load_original(path: Path) -> tuple[Framework, Loaded]:
    """The model in PATH and the framework it belongs to.  A pickle runs code: only the user's own file."""
    for framework in frameworks():
        loaded = framework.load(path)
        if loaded is not None:
            return framework, loaded
    if path.suffix not in (*PICKLES, SKOPS):
        raise InvalidInput(f"{path.name}: not a model file Conveyor converts (joblib/pickle, skops, XGBoost, LightGBM)")
    try:
        joblib = require("joblib", extra="sklearn", for_="converting this model")
        with importable_beside(path):
            model = load_skops(path) if path.suffix == SKOPS else joblib.load(path)
    except (pickle.UnpicklingError, EOFError, ValueError, KeyError) as exc:
        raise InvalidInput(f"{path.name}: not a joblib or pickle file ({exc})") from None
    except ModuleNotFoundError as exc:
        raise InvalidInput(
            f"{path.name} needs the module {exc.name} to load: install the package it was saved with, or run "
            f"from the folder that holds {exc.name}.py (the working folder and the model's folder are searched)"
        ) from None
    for framework in frameworks():
        if framework.accepts(model):
            return framework, framework.describe(model)
    raise InvalidInput(
        f"{path.name} holds a {type(model).__module__}.{type(model).__name__}, not a model Conveyor converts"
    )


def read_sample(path: Path) -> Any:
    """Rows as a pandas frame: CSV with a header, or JSON records / pandas' split orientation."""
    pandas = require("pandas", extra="sklearn", for_="converting this model")
    try:
        if path.suffix == ".csv":
            frame = pandas.read_csv(path)
        elif path.suffix == ".json":
            raw = json.loads(path.read_text())
            if isinstance(raw, dict) and {"columns", "data"} <= set(raw):
                frame = pandas.DataFrame(raw["data"], columns=raw["columns"])
            elif isinstance(raw, list) and raw and all(isinstance(r, dict) for r in raw):
                frame = pandas.DataFrame.from_records(raw)
            else:
                raise InvalidInput(f"{path.name}: expected JSON records or {{'columns': [...], 'data': [...]}}")
        else:
            raise InvalidInput(f"{path.name}: a sample is a .csv (with a header) or .json file")
    except (ValueError, pandas.errors.ParserError) as exc:
        raise InvalidInput(f"{path.name}: not a readable sample ({exc})") from None
    if frame.empty:
        raise InvalidInput(f"{path.name}: the sample has no rows")
    return frame


def _type_of(series: Any) -> str:
    kind = series.dtype.kind
    if kind == "b":
        return "boolean"
    if kind in "iuf":
        return "number"
    return "string"


def features_of(framework: Framework, loaded: Loaded, sample: Any | None) -> tuple[list[Feature], Any | None]:
    """The typed features in the model's order, and the sample reduced to them (columns renamed where needed)."""
    names = loaded.feature_names
    if sample is not None:
        columns = [str(c) for c in sample.columns]
        if names is None:
            if loaded.n_features and len(columns) < loaded.n_features:
                raise InvalidInput(
                    f"the model takes {loaded.n_features} features; the sample has {len(columns)} columns"
                )
            names = columns[: loaded.n_features or len(columns)]
        else:
            found = {n: framework.sample_column(n, columns) for n in names}
            missing = [n for n, column in found.items() if column is None]
            if missing:
                raise InvalidInput(f"the sample lacks column(s) {missing} that the model was trained with")
            names = [column for column in found.values() if column is not None]
        sample = sample[names]
        types = {name: _type_of(sample[name]) for name in names}
    else:
        names = names or [f"f{i}" for i in range(loaded.n_features)]
        if not names:
            raise InvalidInput("the model does not record its features: pass --sample rows.csv")
        types = framework.feature_types(loaded, names)
    known = framework.categories(loaded)
    features = [Feature(name=n, type=types[n], values=known.get(n) if types[n] == "string" else None) for n in names]
    return features, sample


def generated_rows(framework: Framework, loaded: Loaded, features: list[Feature], count: int = GENERATED_ROWS) -> Any:
    """Rows spread over what the model records about its inputs: split thresholds, scaler statistics, categories."""
    pandas = require("pandas", extra="sklearn", for_="converting this model")
    random = np.random.default_rng(20261204)
    ranges = framework.ranges(loaded)
    columns: dict[str, Any] = {}
    for feature in features:
        if feature.type == "string":
            if not feature.values:
                raise InvalidInput(
                    f"the model does not record the values of string feature {feature.name!r}: pass --sample"
                )
            columns[feature.name] = random.choice(feature.values, count)
        elif feature.type == "boolean":
            columns[feature.name] = random.random(count) < 0.5
        elif feature.name in ranges:
            low, high = ranges[feature.name]
            margin = (high - low) * 0.1 or 1.0
            columns[feature.name] = random.uniform(low - margin, high + margin, count)
        else:
            columns[feature.name] = random.normal(0, 1, count)
    return pandas.DataFrame(columns)


def convert_tabular(
    path: Path,
    out: Path,
    name: str,
    sample_path: Path | None = None,
    agreement: float = DEFAULT_AGREEMENT,
    tolerance: float = DEFAULT_TOLERANCE,
    positive_label: str | None = None,
    labels: list[str] | None = None,
    precision: Precision = Precision.AUTO,
) -> Conversion:
    """Convert PATH into the folder OUT (created), or raise ConversionRefused with the rows that disagree.

    ``labels`` renames a classifier's classes (a native XGBoost or LightGBM file numbers them).
    With ``precision`` auto, each of the framework's ``PRECISIONS`` is tried in order (float32
    first, as before): a model whose answers float32 changes converts in double where the
    framework offers it.  Another ``precision`` is the only one tried."""
    path = Path(path)
    framework, loaded = load_original(path)  # a missing converter names its framework's extra
    offered: tuple[str, ...] = getattr(framework, "PRECISIONS", ("float32",))
    if precision == Precision.AUTO:
        tried = offered
    elif precision in offered:
        tried = (str(precision),)
    else:
        raise InvalidInput(
            f"--precision {precision}: {loaded.converter or 'the converter'} converts {loaded.framework} models in "
            f"{' or '.join(offered)} only"
        )
    if labels:
        if loaded.task != "tabular-classification" or len(labels) != len(loaded.labels):
            raise InvalidInput(
                f"--labels names {len(labels)} classes; the model has {len(loaded.labels)} {loaded.labels}"
            )
        loaded.labels = labels
    sample = read_sample(sample_path) if sample_path else None
    features, sample = features_of(framework, loaded, sample)
    frame = sample if sample is not None else generated_rows(framework, loaded, features)
    origin = sample_path.name if sample_path else "generated from the model's own records"
    refusals: list[tuple[str, GateReport, list[str]]] = []  # each precision the gate refused: its report, its rows
    first_error: InvalidInput | None = None  # float32 could not take the sample (its graph differs where it is NaN)
    for each in tried:
        try:
            spec, report, refused = _convert_and_gate(
                framework, loaded, path, out, name, features, frame, origin, each, (agreement, tolerance),
                positive_label,
            )  # fmt: skip
        except InvalidInput as exc:
            if refusals or first_error is not None:
                break  # the next precision does not convert either: float32's refusal (or error) stands
            first_error = exc  # tried again in the next precision; where that fails too, this is the answer
            continue
        if refused is not None:
            if first_error is not None:
                break
            refusals.append((each, report, refused))
            continue
        if refusals or first_error is not None:
            report.in_float32 = refusals[0][1].summary(with_sample=False) if refusals else str(first_error)
        write_folder(out, spec, path)
        return Conversion(spec=spec, report=report, folder=out)
    if first_error is not None:
        raise first_error
    raise ConversionRefused(_refused_in_every_precision(refusals, offered, precision))


def _refused_in_every_precision(
    refusals: list[tuple[str, GateReport, list[str]]], offered: tuple[str, ...], asked: Precision
) -> str:
    """The first precision's refusal in one line (what crossed the gate, and the options that change it),
    its rows, and what each other precision tried gave (or that none was offered)."""
    first_precision, first, rows = refusals[0]
    closest = min((report for _, report, _ in refusals), key=lambda report: report.max_difference)
    remedies = [closest.accepted_by()]
    if "double" in offered and all(p != "double" for p, _, _ in refusals):
        remedies.insert(0, "--precision double")  # --precision float32 was asked: double was never tried
    crossed = "; ".join(f"in {p}: {report.over_the_gate()}" for p, report, _ in refusals)
    lines = [headline(first, remedies, crossed), *rows]
    if len(refusals) > 1:
        others = "; ".join(f"in {p}: {report.summary(with_sample=False)}" for p, report, _ in refusals[1:])
        lines.append(f"  (that was in {first_precision}; also tried {others})")
    elif asked != Precision.AUTO:
        lines.append(f"  (the graph computes in {first_precision}, as --precision {asked} asked)")
    else:
        lines.append("  (the graph computes in float32; this framework's converter offers no double precision)")
    return "\n".join(lines)


def _convert_and_gate(
    framework: Framework,
    loaded: Loaded,
    path: Path,
    out: Path,
    name: str,
    features: list[Feature],
    frame: Any,
    origin: str,
    precision: str,
    thresholds: tuple[float, float],
    positive_label: str | None,
) -> tuple[ModelSpec, GateReport, list[str] | None]:
    """One conversion in ``precision``, probed and gated, with the rows that disagree where the gate refused
    it; ``model.onnx`` stays in OUT only when the gate passed."""
    import onnx  # every framework's extra brings it (skl2onnx, onnxmltools)

    from conveyor.serving.runtime import RuntimeOptions
    from conveyor.serving.tabular import TabularModel

    agreement, tolerance = thresholds
    try:
        if precision == "float32":
            proto = framework.to_onnx(loaded, features)
        else:
            proto = framework.to_onnx(loaded, features, precision=precision)  # type: ignore[call-arg]
    except InvalidInput:
        raise
    except Exception as exc:  # converters raise RuntimeError, NotImplementedError, their own errors
        raise InvalidInput(
            f"{path.name}: {loaded.converter or 'the converter'} could not convert {model_name(loaded.model)}: "
            f"{root_cause(exc)}"
        ) from None
    out.mkdir(parents=True, exist_ok=True)
    onnx.save(proto, out / "model.onnx")
    spec = ModelSpec(
        name=name,
        task=loaded.task,
        labels=loaded.labels,
        positive_label=positive_label,
        features=features,
        tokenizer_file=None,
        source=Source(
            framework=loaded.framework,
            framework_version=loaded.framework_version,
            file=kept_original(path),
            converter=loaded.converter,
        ),
    )
    served = TabularModel(
        ResolvedModel(spec=spec, model_path=out / "model.onnx", tokenizer_path=None), RuntimeOptions()
    )

    def serve(with_features: list[Feature], rows: Any) -> np.ndarray:
        """The graph through the server's own feeding code, its schema as given."""
        served.spec = spec.model_copy(update={"features": with_features})
        return served.score_columns({f.name: rows[f.name].tolist() for f in with_features})

    imputers = getattr(framework, "missing_markers", None)  # a framework's imputers (optional)
    spec.features = probe_features(
        features,
        frame,
        lambda rows: framework.predict(loaded, rows),
        serve,
        loaded.task,
        agreement,
        tolerance,
        imputers(loaded) if imputers is not None else None,
    )
    markers = {f.name: f.missing_as for f in spec.features if f.missing_as is not None}
    frame = frame.fillna(markers) if markers else frame  # a missing string is the marker to both models
    try:
        converted = serve(spec.features, frame)
    except InvalidInput as exc:  # a value the served model refuses: a missing one where the model takes none
        shutil.rmtree(out, ignore_errors=True)
        tried = (
            "; registration tried the original model with it missing: it failed, or the converted graph answered "
            "otherwise"
            if "missing value" in exc.message
            else ""
        )
        raise InvalidInput(f"the sample ({origin}): {exc}{tried}") from None
    original = framework.predict(loaded, frame)
    report = check_conversion(loaded.task, original, converted, origin, agreement, tolerance)
    if not report.passed:
        shutil.rmtree(out, ignore_errors=True)
        return spec, report, rows_shown(report, frame, original, converted, loaded.labels)
    report.precision = precision
    return spec, report, None


def model_name(model: Any) -> str:
    """The estimator's class, or a Pipeline's steps' classes: ``Pipeline(ColumnTransformer, SVC)``."""
    steps = getattr(model, "steps", None)
    if isinstance(steps, list):
        return f"{type(model).__name__}({', '.join(type(step).__name__ for _, step in steps)})"
    return type(model).__name__


def root_cause(exc: BaseException, limit: int = 300) -> str:
    """The innermost exception's first line (a converter wraps it in a message that can dump megabytes
    of node attributes: skl2onnx's "Unable to create node ... attributes=..."), at most LIMIT characters."""
    seen = {id(exc)}
    while True:
        inner = exc.__cause__ or (None if exc.__suppress_context__ else exc.__context__)
        if inner is None or id(inner) in seen:
            break
        seen.add(id(inner))
        exc = inner
    text = (str(exc).strip().splitlines() or [""])[0]
    if len(text) > limit:
        text = text[: limit - 3] + "..."
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
