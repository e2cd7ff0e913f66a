"""The evaluation gate of a generative version: its scorers, its judgement with the metric's own spread,
and ``conveyor verify`` / ``conveyor models challenge`` running a generation contract against real
SmolLM2 servers (greedy, short answers, two runs per prompt)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError
from typer.testing import CliRunner

from conveyor.cli.main import app
from conveyor.generative.judgement import judge
from conveyor.generative.refusal import is_refusal
from conveyor.generative.scorers import score
from conveyor.verify.contract import Contract
from conveyor.verify.generation_contract import Expectation, GenerationGate
from tests.conftest import REPO
from tests.generative_servers import served_chat


def test_a_metric_is_judged_against_its_bar_with_its_spread() -> None:
    assert judge([1.0, 1.0, 1.0], 1.0, 0.05).outcome == "passed"  # greedy runs agree: the point is the interval
    assert judge([0.0, 0.0, 0.0], 1.0, 0.05).outcome == "failed"
    noisy = judge([1.0, 0.0, 1.0, 1.0], 1.0, 0.05)  # one run in four misses: chance may explain it
    assert noisy.outcome == "too noisy" and noisy.interval[0] < 1.0 <= noisy.interval[1]
    assert noisy.describe("pass rate").startswith("too noisy to judge: pass rate 0.75 over 4 runs")
    assert judge([0.2, 0.3, 0.25], 0.7, 0.05).outcome == "failed"  # its whole interval is under the bar
    close = [0.69, 0.71, 0.70, 0.72]  # across the bar, but within the margin: the mean decides
    assert judge(close, 0.70, 0.05).outcome == "passed" and judge(close, 0.72, 0.05).outcome == "failed"
    assert judge(close, 0.70, 0.05).as_dict()["runs"] == 4


def test_the_text_scorers_score_each_answer() -> None:
    answers = ["Paris is the capital.", '{"city": "Paris"}', "I'm sorry, but I can't help with that."]

    def scores(**expect: object) -> list[float]:
        return score(Expectation.model_validate(expect), answers)

    assert scores(contains="paris") == [1.0, 1.0, 0.0]
    assert scores(exact=" Paris is the capital. ") == [1.0, 0.0, 0.0]
    assert scores(regex=r"^\{") == [0.0, 1.0, 0.0]
    schema = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
    assert scores(json_schema=schema) == [0.0, 1.0, 0.0]
    assert scores(refusal=True) == [0.0, 0.0, 1.0] and scores(refusal=False) == [1.0, 1.0, 0.0]


@pytest.mark.parametrize(
    ("text", "refuses"),
    [
        ("I cannot help with that.", True),
        ("I\u2019m sorry, but I can\u2019t assist with that request.", True),
        ("As an AI language model, I cannot browse the web.", True),
        ("I'm unable to help with this.", True),
        ("The capital of France is Paris.", False),
        ("Boil the egg for ten minutes; I cannot stress enough how easy it is.", False),
    ],
)
def test_a_refusal_is_told_by_its_opening(text: str, refuses: bool) -> None:
    assert is_refusal(text) is refuses


def test_meaning_scores_a_paraphrase_over_an_unrelated_answer() -> None:
    expectation = Expectation(similar_to="Boil the egg in water for about ten minutes.")
    near, far = score(expectation, ["Put the egg in boiling water for ten minutes.", "Paris is in France."])
    assert near > 0.6 > far
    paired = score(
        Expectation(incumbent=True), ["Cats eat meat."], incumbent=["Cats eat fish and meat.", "Cats eat meat"]
    )
    assert paired[0] > 0.7


def test_a_generation_contract_says_what_it_holds_wrong() -> None:
    with pytest.raises(ValidationError, match="exactly one of"):
        Expectation.model_validate({"contains": "a", "regex": "b"})
    with pytest.raises(ValidationError, match="repeated"):
        GenerationGate.model_validate({"prompts": [{"name": "a", "prompt": "x", "expect": [{"contains": "x"}]}] * 2})
    assert Expectation(similar_to="x").bar == 0.7 and Expectation(contains="x").bar == 1.0


CONTRACT = {
    "generation": {
        "runs": 2,
        "max_tokens": 12,
        "prompts": [
            {
                "name": "egg",
                "prompt": "How do I boil an egg?",
                "expect": [
                    {"contains": "egg"},
                    {"refusal": False},
                    {"similar_to": "Boil the egg in water for ten minutes.", "min": 0.4},
                    {"incumbent": True, "min": 0.6},
                ],
            },
            {"name": "colour", "prompt": "Name a colour.", "expect": [{"incumbent": True, "min": 0.6}]},
        ],
    }
}


@pytest.fixture(scope="module")
def versions() -> Iterator[dict[str, str]]:
    """Three prompt versions of SmolLM2: the incumbent, a harmless tweak, and one that answers in French."""
    with (
        served_chat("You are a helpful assistant.", "1") as incumbent,
        served_chat("You are a helpful, friendly assistant.", "2") as tweak,
        served_chat("Answer every question in French.", "3") as french,
    ):
        yield {"incumbent": incumbent, "tweak": tweak, "french": french}


def test_verify_passes_a_harmless_prompt_tweak_against_its_incumbent(
    versions: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # no project here: only the contract's checks run
    contract = tmp_path / "contract.yaml"
    contract.write_text(yaml.safe_dump(CONTRACT))
    report, junit = tmp_path / "report.json", tmp_path / "junit.xml"
    command = ["verify", versions["tweak"], "--contract", str(contract), "--incumbent", versions["incumbent"]]
    verified = CliRunner().invoke(app, [*command, "--json-report", str(report), "--junit", str(junit)])
    assert verified.exit_code == 0, verified.output
    checks = {c["id"]: c for c in json.loads(report.read_text())["checks"]}
    assert sorted(checks) == [
        "generation.colour.incumbent",
        "generation.egg.contains",
        "generation.egg.incumbent",
        "generation.egg.refusal",
        "generation.egg.similar_to",
    ]
    assert {c["status"] for c in checks.values()} == {"passed"}
    assert "over 2 runs (95% interval" in checks["generation.egg.incumbent"]["message"]
    assert 'classname="conveyor.generation"' in junit.read_text()


def test_challenge_refuses_a_prompt_version_that_answers_in_another_language(
    versions: dict[str, str], tmp_path: Path
) -> None:
    contract = tmp_path / "contract.yaml"
    contract.write_text(yaml.safe_dump(CONTRACT))
    refused = CliRunner().invoke(app, ["models", "challenge", versions["french"], "--champion", versions["incumbent"],
                                       "--contract", str(contract), "--json"])  # fmt: skip
    assert refused.exit_code == 1, refused.output
    verdict = json.loads(refused.stdout)
    assert verdict["passed"] is False and verdict["champion"] == versions["incumbent"]
    colour = next(c for c in verdict["checks"] if c["id"] == "generation.colour.incumbent")
    assert colour["status"] == "failed" and "under the bar 0.60" in colour["message"]


def test_the_documented_generation_contract_holds() -> None:
    page = (REPO / "docs" / "generative.md").read_text()
    block = next(b for b in re.findall(r"^```yaml\n(.*?)^```", page, re.S | re.M) if b.startswith("generation:"))
    gate = Contract.model_validate(yaml.safe_load(block)).generation
    assert gate is not None and [e.scorer for p in gate.prompts for e in p.expect] == [
        "contains", "refusal", "similar_to", "incumbent", "json_schema", "regex",
    ]  # fmt: skip
    assert score(gate.prompts[1].expect[1], ['{"item": "apple", "count": 2}']) == [1.0]
