"""Champion and challenger: a retrained version judged against the live one on labelled traffic.

A retraining's own test split says how the candidate does on the data it was drawn from; the
question before a canary is whether it does better *on what production sends now*.  Both
versions score the same labelled rows (the traffic ``conveyor monitor --export-holdout`` wrote,
which the retraining did not train on) with the code ``conveyor serve`` runs, and the candidate
passes only if it is at least ``margin`` better: accuracy for a classifier, mean absolute error
for a regressor.  Too few labelled rows is a refusal, not a pass: the gate fails closed.  So is a
candidate that keeps no reference profile where the champion keeps one: promoted, it could not
be watched (the loop's second cycle would find nothing to judge its traffic against).
"""

from __future__ import annotations

import csv
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from conveyor.digest import sha256_file
from conveyor.errors import InvalidInput

if TYPE_CHECKING:  # the CLI imports the defaults below at start-up: numpy and the spec load when judging
    from conveyor.serving.spec import ModelSpec, ResolvedModel

BATCH = 64
DEFAULT_MIN_ITEMS = 50
DEFAULT_MARGIN = 0.0


@dataclass(frozen=True)
class Score:
    ref: str
    metric: str  # accuracy or mae
    value: float


@dataclass(frozen=True)
class Verdict:
    candidate: Score
    champion: Score
    items: int
    margin: float
    passed: bool
    reason: str
    labelled: str = ""  # the labelled file's content digest (sha256:...): which rows judged it

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def tags(self) -> dict[str, str]:
        """What the candidate's lineage keeps of the judgement (registry tags)."""
        return {
            "challenge": "passed" if self.passed else "refused",
            "challenge.champion": self.champion.ref,
            f"challenge.{self.candidate.metric}": f"{self.candidate.value:.4f}",
            f"challenge.champion_{self.champion.metric}": f"{self.champion.value:.4f}",
            "challenge.items": str(self.items),
            **({"challenge.labelled": self.labelled} if self.labelled else {}),
        }


@dataclass(frozen=True)
class Labelled:
    items: list[Any]
    truth: list[Any]


def read_labelled(path: Path, spec: ModelSpec, target: str, recent: int | None = None) -> Labelled:
    """The labelled rows of a CSV (a text model's ``text`` column, or the model's features) and
    the true answers in ``target``; with ``recent``, only the last that many rows."""
    if not path.is_file():
        raise InvalidInput(f"{path}: no such labelled file")
    with open(path, newline="") as handle:
        reader = csv.DictReader(handle)
        columns = reader.fieldnames or []
        wanted = ["text"] if spec.task.takes_text else [f.name for f in spec.features]
        missing = [c for c in [*wanted, target] if c not in columns]
        if missing:
            raise InvalidInput(f"{path}: no column {', '.join(map(repr, missing))} (it has {', '.join(columns)})")
        rows = list(reader)
    if recent is not None:
        rows = rows[-recent:]
    items: list[Any] = []
    truth: list[Any] = []
    for number, row in enumerate(rows, 2):
        items.append(row["text"] if spec.task.takes_text else _record(row, spec, f"{path}:{number}"))
        truth.append(_answer(row[target], spec, f"{path}:{number}"))
    return Labelled(items, truth)


def _record(row: dict[str, str], spec: ModelSpec, where: str) -> dict[str, Any]:
    record: dict[str, Any] = {}
    for feature in spec.features:
        text = row[feature.name]
        try:
            if feature.type == "number":
                record[feature.name] = float(text)
            elif feature.type == "integer":
                record[feature.name] = int(float(text))
            elif feature.type == "boolean":
                record[feature.name] = text.strip().lower() in ("true", "1", "yes")
            else:
                record[feature.name] = text
        except ValueError:
            raise InvalidInput(f"{where}: column {feature.name!r} is {text!r}, not a {feature.type}") from None
    return record


def _answer(text: str, spec: ModelSpec, where: str) -> Any:
    if spec.task.regression:
        try:
            return float(text)
        except ValueError:
            raise InvalidInput(f"{where}: the true value {text!r} is not a number") from None
    if text not in spec.labels:
        raise InvalidInput(f"{where}: the true label {text!r} is not one of the model's labels {spec.labels}")
    return text


def score(resolved: ResolvedModel, labelled: Labelled) -> float:
    """Accuracy (classifier) or mean absolute error (regressor) of ``resolved`` on the rows."""
    import numpy as np

    from conveyor.serving.dataplane import ServingOptions
    from conveyor.serving.tasks import server_for

    task = server_for(resolved, ServingOptions())
    task.load()
    answers: list[Any] = []
    for start in range(0, len(labelled.items), BATCH):
        scores = np.asarray(task.score(labelled.items[start : start + BATCH]), dtype=np.float64)
        if task.classifier:
            answers += [resolved.spec.labels[i] for i in scores.argmax(axis=1)]
        else:
            answers += scores[:, 0].tolist()
    if task.classifier:
        return float(np.mean([a == t for a, t in zip(answers, labelled.truth, strict=True)]))
    return float(np.mean([abs(a - t) for a, t in zip(answers, labelled.truth, strict=True)]))


def _ref(resolved: ResolvedModel) -> str:
    return f"{resolved.spec.name}:{resolved.spec.version}"


def _check_comparable(candidate: ModelSpec, champion: ModelSpec) -> None:
    if not candidate.task.row_inputs:
        raise InvalidInput(f"{candidate.name}: a {candidate.task} model has no labelled answers to compare")
    if candidate.task != champion.task:
        raise InvalidInput(f"the candidate is a {candidate.task} model, the champion a {champion.task} one")
    if not candidate.task.regression and sorted(candidate.labels) != sorted(champion.labels):
        raise InvalidInput(f"the candidate's labels {candidate.labels} differ from the champion's {champion.labels}")


def _unwatched(candidate: ResolvedModel, champion: ResolvedModel) -> str:
    """Why the candidate could not be watched once it replaced the champion ("" when it could)."""
    from conveyor.monitoring.profile import PROFILE_FILE

    if (champion.model_path.parent / PROFILE_FILE).is_file() and not (
        candidate.model_path.parent / PROFILE_FILE
    ).is_file():
        return (
            f"{_ref(candidate)} keeps no reference profile ({PROFILE_FILE}) while {_ref(champion)} does: once live, "
            "its traffic could not be judged for drift; register it with --reference FILE (the rows it was trained on)"
        )
    return ""


def challenge(
    candidate: ResolvedModel,
    champion: ResolvedModel,
    labelled_file: Path,
    *,
    target: str | None = None,
    margin: float = DEFAULT_MARGIN,
    min_items: int = DEFAULT_MIN_ITEMS,
    recent: int | None = None,
) -> Verdict:
    """Score both on the labelled rows; the candidate passes if it is ``margin`` better (or more)."""
    _check_comparable(candidate.spec, champion.spec)
    regression = candidate.spec.task.regression
    labelled = read_labelled(labelled_file, candidate.spec, target or candidate.spec.task.answer_field, recent)
    metric = "mae" if regression else "accuracy"
    new, live = score(candidate, labelled), score(champion, labelled)
    items = len(labelled.items)
    unwatched = _unwatched(candidate, champion)
    if unwatched:
        passed, reason = False, unwatched
    elif items < min_items:
        passed, reason = False, f"only {items} labelled rows; at least {min_items} are needed to judge"
    elif regression:
        passed = new <= live - margin
        reason = f"MAE {new:.4g} against the champion's {live:.4g} on {items} rows (needs <= {live - margin:.4g})"
    else:
        passed = new >= live + margin
        reason = f"accuracy {new:.1%} against the champion's {live:.1%} on {items} rows (needs >= {live + margin:.1%})"
    scores = Score(_ref(candidate), metric, new), Score(_ref(champion), metric, live)
    return Verdict(*scores, items, margin, passed, reason, f"sha256:{sha256_file(labelled_file)[0]}")


def champion_of(candidate: str, champion: str | None) -> str:
    """The version to beat: ``champion``, else the registered candidate's ``name@production``."""
    from conveyor.registry.refs import parse_ref
    from conveyor.serving.fetch import is_registry_ref

    if champion is not None:
        return champion
    if not is_registry_ref(candidate):
        raise InvalidInput(f"{candidate} is not a registered version: name the live one with --champion")
    return f"{parse_ref(candidate).name}@production"


def record_verdict(candidate: str, verdict: Verdict) -> None:
    """Tag the registered candidate with the verdict (``challenge=passed|refused``, both scores):
    its lineage shows why it went out, or why it never did.  A model folder has no lineage to tag."""
    from conveyor.registry.config import open_registry
    from conveyor.serving.fetch import is_registry_ref

    if not is_registry_ref(candidate):
        return
    registry = open_registry()
    version = registry.resolve(candidate)
    registry.set_tags(version.name, version.version, verdict.tags(), [])
