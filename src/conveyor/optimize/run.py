"""``conveyor models optimize``: make candidates, gate them on agreement, measure, register the best.

1. the version's files come from the verified cache;
2. each method writes a candidate folder (the same files, the model replaced); a variant the
   user made elsewhere (``variant=``) is one more candidate;
3. every candidate answers the evaluation inputs (texts, records or images, as the task takes
   them) beside the original: below ``min_agreement`` label agreement (a regressor: values
   within 0.1%) it is refused, with the inputs that disagree;
4. the original and the candidates that passed are measured in-process, interleaved, in rounds;
   the fastest passing candidate is registered as the model's next version only when it is
   faster in every round, by a margin (``speed.Speedup.beyond_noise``): otherwise nothing is, and
   the ratio and its range are shown (noise is no optimization);
5. its lineage says ``optimized_from`` and its metrics hold the agreement, the largest
   probability difference and the measured speed-up.

A version that already has a registered variant of one of the methods asked for gets that
variant back (its aliases moved) instead of a duplicate, unless ``again``: a pipeline or a
script can run the same optimization on every run.
"""

from __future__ import annotations

import json
import shutil
import statistics
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from conveyor.errors import ConveyorError, InvalidInput
from conveyor.extras import require
from conveyor.optimize import DEFAULT_METHODS, DEFAULT_MIN_AGREEMENT
from conveyor.optimize.agreement import Agreement, compare, probabilities
from conveyor.optimize.speed import NOISE_MARGIN, Speedup
from conveyor.optimize.variants import (
    CALIBRATED,
    METHODS,
    Calibration,
    NotApplicable,
    calibration_for,
    make_variant,
    one_line,
)
from conveyor.registry.protocol import Registry
from conveyor.registry.records import Lineage, ModelVersion

USER_VARIANT = "given"


@dataclass
class Candidate:
    method: str
    params: dict[str, Any]
    folder: Path
    agreement: Agreement
    passed: bool
    throughput: float | None = None
    speedup: Speedup | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "params": self.params,
            "agreement": round(self.agreement.rate, 4),
            "compared": self.agreement.compared,
            "max_probability_diff": round(self.agreement.max_probability_diff, 5),
            "passed": self.passed,
            "texts_per_s": None if self.throughput is None else round(self.throughput, 1),
            "speedup": None if self.speedup is None else round(self.speedup.ratio, 3),
            "speedup_interval": None
            if self.speedup is None
            else [round(self.speedup.low, 3), round(self.speedup.high, 3)],
            "disagreements": self.agreement.disagreements,
        }


@dataclass
class Outcome:
    source: ModelVersion
    min_agreement: float
    candidates: list[Candidate] = field(default_factory=list)
    original_throughput: float | None = None
    chosen: Candidate | None = None
    registered: ModelVersion | None = None
    skipped: dict[str, str] = field(default_factory=dict)  # method -> why it made no variant of this model
    reason: str = ""

    @property
    def existing(self) -> bool:
        """``registered`` was made by an earlier run: nothing was chosen, so nothing was made this time."""
        return self.registered is not None and self.chosen is None

    @property
    def method(self) -> str | None:
        if self.chosen is not None:
            return self.chosen.method
        return self.registered.properties.get("optimization") if self.registered else None

    @property
    def agreement(self) -> float | None:
        if self.chosen is not None:
            return self.chosen.agreement.rate
        return self.registered.lineage.metrics.get("agreement") if self.registered else None

    @property
    def speedup(self) -> float | None:
        if self.chosen is None:
            return self.registered.lineage.metrics.get("speedup_in_process") if self.registered else None
        return None if self.chosen.speedup is None else self.chosen.speedup.ratio

    def as_dict(self) -> dict[str, Any]:
        return {
            "source": self.source.ref,
            "min_agreement": self.min_agreement,
            "original_texts_per_s": None if self.original_throughput is None else round(self.original_throughput, 1),
            "candidates": [c.as_dict() for c in self.candidates],
            "skipped": self.skipped,
            "chosen": self.method,
            "agreement": self.agreement,
            "speedup": None if self.speedup is None else round(self.speedup, 3),
            "registered": self.registered.ref if self.registered else None,
            "existing": self.existing,
            "reason": self.reason,
        }


class GateRefused(ConveyorError):
    """No candidate answered like the original often enough (or none was faster)."""

    def __init__(self, outcome: Outcome) -> None:
        super().__init__(outcome.reason)
        self.outcome = outcome


def evaluation_texts(
    golden: Iterable[list[Any]], files: Iterable[Path], features: list[dict[str, Any]] | None = None
) -> list[Any]:
    """The inputs to compare on: the contract's golden inputs, then each file's.

    A file is a JSON list (texts, or a tabular model's records), a JSON object with ``texts``
    (the training pipeline's ``test.json``), a CSV with a header (records, typed by
    ``features``), an image or a folder of images (base64, as ``/predict`` takes them), or plain
    text with one example per line.
    """
    from conveyor.verify.examples import IMAGE_SUFFIXES, read_examples

    inputs = [item for case in golden for item in case]
    for path in files:
        if path.is_dir() or path.suffix.lower() in (".csv", *IMAGE_SUFFIXES):
            inputs += read_examples(path, features, limit=None)
            continue
        if not path.is_file():
            raise InvalidInput(f"evaluation file {path} does not exist")
        raw = path.read_text()
        try:
            data = json.loads(raw)
        except json.JSONDecodeError:
            inputs += [line.strip() for line in raw.splitlines() if line.strip()]
            continue
        items = data.get("texts") if isinstance(data, dict) else data
        if not isinstance(items, list) or not items:
            raise InvalidInput(f"{path}: expected a JSON list (texts or records) or an object with 'texts'")
        inputs += items
    unique: dict[bytes, Any] = {}
    for item in inputs:  # each input once, in order
        unique.setdefault(json.dumps(item, sort_keys=True).encode(), item)
    return list(unique.values())


def evaluation_inputs(registry: Registry, ref: str, golden: Iterable[list[Any]], files: list[Path]) -> list[Any]:
    """``evaluation_texts`` for ``ref``: a CSV's cells typed by the version's features."""
    features = None
    if any(path.suffix.lower() == ".csv" for path in files):
        from conveyor.serving.spec import locate_model, resolve_model

        _, folder = registry.cached(ref)
        spec = resolve_model(*locate_model(folder)).spec
        features = [f.model_dump(exclude_none=True) for f in spec.features or []]
    return evaluation_texts(golden, files, features)


def earlier_variant(registry: Registry, version: ModelVersion, methods: Iterable[str]) -> ModelVersion | None:
    """The newest registered variant of ``version`` made by one of ``methods``; None when there is none."""
    wanted = set(methods)
    return max(
        (
            v
            for v in registry.list_versions(version.name)
            if v.lineage.optimized_from == version.ref and v.properties.get("optimization") in wanted
        ),
        key=lambda v: v.version,
        default=None,
    )


def _candidate_folder(source: Path, model_file: Path, root: Path, name: str) -> tuple[Path, Path]:
    """A copy of the version's files in ``root/name`` with the model to be replaced; (folder, its model path)."""
    folder = root / name
    shutil.copytree(source, folder, ignore=shutil.ignore_patterns(".conveyor-complete"))
    return folder, folder / model_file.relative_to(source)


def optimize(
    registry: Registry,
    ref: str,
    texts: list[Any],
    *,
    methods: Iterable[str] = DEFAULT_METHODS,
    variant: Path | None = None,
    calibration_texts: list[str] | None = None,
    min_agreement: float = DEFAULT_MIN_AGREEMENT,
    measure: bool = True,
    register: bool = True,
    aliases: Iterable[str] = (),
    again: bool = False,
    on_step: Callable[[str], None] | None = None,
) -> Outcome:
    """Make, gate, measure and (``register``) register the best variant of ``ref``; GateRefused when none qualifies.

    When ``ref`` already has a variant of one of ``methods`` (and not ``again``, ``variant`` or a dry run), that
    variant is the outcome (``existing``) and nothing is made.

    ``calibration_texts`` feed the calibrated methods (int8-smooth, fused-int8-smooth); without them the evaluation
    texts are used, which is weaker evidence: the gate then compares on the texts calibrated on.
    """
    from conveyor.optimize.speed import measure as measure_speed
    from conveyor.optimize.speed import speedup
    from conveyor.serving.spec import locate_model, resolve_model

    if variant is None:  # making variants: onnxruntime's quantizer and fusions need onnx and sympy
        for module in ("onnx", "sympy"):
            require(module, extra="optimize", for_="conveyor models optimize")
    say = on_step or (lambda text: None)
    if not 0 < min_agreement <= 1:
        raise InvalidInput(f"the minimum agreement must be in (0, 1], not {min_agreement:g}")
    if not texts:
        raise InvalidInput("no evaluation inputs: give --eval FILE or a contract with golden examples")
    methods = list(methods)
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        raise InvalidInput(f"unknown optimization(s) {unknown}; methods: {', '.join(METHODS)}")
    aliases = list(aliases)
    if register and variant is None and not again:
        source = registry.resolve(ref)
        if (earlier := earlier_variant(registry, source, methods)) is not None:
            for alias in aliases:
                registry.set_alias(earlier.name, alias, earlier.version)
            outcome = Outcome(source, min_agreement, registered=registry.resolve(earlier.ref))
            rate = outcome.agreement
            measured = f", {rate:.2%} agreement when it was made" if rate is not None else ""
            outcome.reason = (
                f"{earlier.ref} is already the {outcome.method} variant of {source.ref}{measured}: nothing made"
            )
            return outcome
    version, folder = registry.cached(ref)
    model_file = resolve_model(*locate_model(folder)).model_path  # the file the server would load
    outcome = Outcome(version, min_agreement)
    with tempfile.TemporaryDirectory(prefix="conveyor-optimize-") as tmp:
        root = Path(tmp)
        made: list[tuple[str, dict[str, Any], Path]] = []
        calibration, uncalibrated = Calibration(), ""
        if CALIBRATED & set(methods):
            try:
                calibration = calibration_for(folder, calibration_texts or texts)
            except InvalidInput as error:  # e.g. not a text model: the uncalibrated methods may still apply
                uncalibrated = str(error)
        for method in methods:
            if method in CALIBRATED and uncalibrated:
                outcome.skipped[method] = uncalibrated
                continue
            say(f"making the {method} variant of {version.ref}")
            candidate, path = _candidate_folder(folder, model_file, root, method)
            try:
                made.append((method, make_variant(method, model_file, path, calibration), candidate))
            except NotApplicable as error:
                outcome.skipped[method] = str(error)
                say(f"{method}: {error}; skipped")
        if variant is not None:
            if not variant.is_file():
                raise InvalidInput(f"variant {variant} does not exist")
            candidate, path = _candidate_folder(folder, model_file, root, USER_VARIANT)
            shutil.copyfile(variant, path)
            made.append((USER_VARIANT, {"file": variant.name}, candidate))
        say(f"answering {len(texts)} inputs with {version.ref}")
        reference = probabilities(folder, texts)
        for method, params, candidate in made:
            say(f"comparing {method} with {version.ref} on {len(texts)} inputs")
            try:
                agreement = compare(folder, candidate, texts, reference=reference)
            except Exception as error:  # a variant the runtime cannot load or run is no variant
                outcome.skipped[method] = f"the variant does not run ({one_line(error)})"
                say(f"{method}: {outcome.skipped[method]}; skipped")
                continue
            outcome.candidates.append(Candidate(method, params, candidate, agreement, agreement.rate >= min_agreement))
        passed = [c for c in outcome.candidates if c.passed]
        if not outcome.candidates:
            why = "; ".join(f"{m}: {reason}" for m, reason in outcome.skipped.items())
            outcome.reason = f"no method makes a variant of {version.ref} ({why})"
            raise GateRefused(outcome)
        if not passed:
            worst = ", ".join(f"{c.method} {c.agreement.rate:.1%}" for c in outcome.candidates)
            outcome.reason = f"no variant agrees with {version.ref} on {min_agreement:.0%} of the inputs ({worst})"
            raise GateRefused(outcome)
        if measure:
            say(f"measuring {', '.join(c.method for c in passed)} against {version.ref} in-process")
            rounds = measure_speed({"original": folder, **{c.method: c.folder for c in passed}}, texts)
            outcome.original_throughput = statistics.median(rounds["original"])
            for c in passed:
                c.throughput = statistics.median(rounds[c.method])
                c.speedup = speedup(rounds["original"], rounds[c.method])
            faster = [c for c in passed if c.speedup is not None and c.speedup.beyond_noise]
            if not faster:
                measured = "; ".join(f"{c.method} {c.speedup}" for c in passed)
                outcome.reason = (
                    f"no variant that agrees is faster than {version.ref} beyond the measured noise "
                    f"({outcome.original_throughput:.0f} inputs/s; {measured}; a variant must be over "
                    f"{1 + NOISE_MARGIN:.2f}x in every round)"
                )
                raise GateRefused(outcome)
            outcome.chosen = max(faster, key=lambda c: c.speedup.ratio if c.speedup else 0.0)
        else:
            outcome.chosen = passed[0]
        chosen = outcome.chosen
        outcome.reason = f"{chosen.method} agrees on {chosen.agreement.rate:.2%} of {chosen.agreement.compared} inputs"
        if register:
            metrics = {
                "agreement": round(chosen.agreement.rate, 6),
                chosen.agreement.difference_name: round(chosen.agreement.max_probability_diff, 6),
            }
            if chosen.speedup is not None:
                metrics["speedup_in_process"] = round(chosen.speedup.ratio, 4)
                metrics["speedup_in_process_low"] = round(chosen.speedup.low, 4)
                metrics["speedup_in_process_high"] = round(chosen.speedup.high, 4)
            say(f"registering the {chosen.method} variant of {version.ref}")
            outcome.registered = registry.register(
                chosen.folder,
                version.name,
                description=f"{chosen.method} variant of {version.ref}",
                properties={
                    **version.properties,
                    "optimization": chosen.method,
                    "optimization_params": json.dumps(chosen.params, sort_keys=True),
                },
                aliases=aliases,
                lineage=Lineage(
                    source=version.lineage.source,
                    git_commit=version.lineage.git_commit,
                    run_id=version.lineage.run_id,
                    metrics={**version.lineage.metrics, **metrics},
                    optimized_from=version.ref,
                ),
            )
    return outcome
