"""Canary analysis of a generative version, end to end with the real SmolLM2 model: a harmless prompt
tweak is promoted and a prompt that switches the answers' language is rolled back, judged on mirrored
prompts through a real router by meaning (MiniLM), with the servers' TTFT and tokens/s beside.

SmolLM2-135M ignores a system prompt asking it to refuse (checked at temperature 0: it answers anyway),
so the harmful version here is one that makes it answer in French, which it does; the refusal-rate and
length shifts are judged on recorded answers in tests/test_generation_analysis.py."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import yaml

from tests.registry_fixtures import run_cli
from tests.rollout_fixtures import Load, Proc, status_of
from tests.smollm import smollm_gguf

PROMPTS = ["How do I boil an egg?", "Name a colour.", "Write a haiku about rain.", "What is 2 plus 2?",
           "Give me a tip for sleeping well.", "What do cats eat?"]  # fmt: skip
# small windows on a shared machine: latency is judged only beyond a minute, and the speed rules loosely
# (both backends share two cores with the suite, and the canary answers every mirrored copy besides its
# share: its queue, part of its time to first token, is longer than stable's); judge_speed is tested alone
FAST = ["--interval", "2s", "--mirror-percent", "100", "--min-requests", "4", "--min-compared", "4",
        "--max-inconclusive", "20", "--p99-floor-ms", "60000", "--max-ttft-ratio", "20",
        "--min-tokens-per-second-ratio", "0.05"]  # fmt: skip
# the evaluation gate runs against the canary each window, stable its incumbent
COLOUR = {"name": "colour", "prompt": "Name a colour.", "expect": [{"refusal": False}, {"incumbent": True, "min": 0.6}]}
GATE = {"generation": {"runs": 2, "max_tokens": 12, "prompts": [COLOUR]}}


@dataclass
class Chats(Load):
    """Three clients asking the router for short greedy chats all along; counts the answers by status."""

    clients: int = 3
    join_timeout: float = 60

    def _run(self, index: int) -> None:
        with httpx.Client(timeout=60) as client:
            n = index
            while not self._stop.is_set():
                body = {"model": "chat", "messages": [{"role": "user", "content": PROMPTS[n % len(PROMPTS)]}]}
                n += 1
                try:
                    key = str(client.post(self.url + "/v1/chat/completions", json=body).status_code)
                except httpx.HTTPError as exc:
                    key = type(exc).__name__
                with self._lock:
                    self.seen[key] += 1


def _config(tmp_path: Path, name: str, system_prompt: str) -> str:
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump({"system_prompt": system_prompt, "temperature": 0, "max_tokens": 8}))
    return str(path)


@pytest.mark.slow(seconds=90)  # two rollouts of a real model: 100 s measured on a loaded 2-core machine
def test_a_prompt_tweak_is_promoted_and_a_language_switch_rolled_back(
    router: Proc, rollout_home: Path, tmp_path: Path
) -> None:
    base = _config(tmp_path, "base", "You are a helpful assistant.")
    run_cli("models", "register", str(smollm_gguf()), "--name", "chat", "--generation-config", base, check=True)
    tweak = _config(tmp_path, "tweak", "You are a helpful, friendly assistant.")
    run_cli("models", "register", "--from", "chat:1", "--generation-config", tweak, check=True)
    french = _config(tmp_path, "french", "Answer every question in French.")
    run_cli("models", "register", "--from", "chat:1", "--generation-config", french, check=True)
    run_cli("rollout", "start", "chat:1", "--service", "svc", check=True)
    contract = tmp_path / "contract.yaml"
    contract.write_text(yaml.safe_dump(GATE))
    gated = [*FAST, "--contract", str(contract)]

    with Chats(router.url) as chats:
        promoted = run_cli("rollout", "start", "chat:2", "--service", "svc", "--steps", "50,100", *gated)
    assert promoted.returncode == 0, promoted.stdout + promoted.stderr
    assert set(chats.seen) == {"200"}, chats.seen
    status = status_of(rollout_home)
    judged = [run for run in status["analysis"] if run["outcome"] == "successful"]
    assert len(judged) == 1, status["analysis"]
    measured = judged[0]["measurements"]
    assert measured["answer_similarity"] >= 0.6 and measured["refusal_rate"] == 0.0, measured
    assert measured["canary_ttft_ms"] > 0 and measured["stable_tokens_per_s"] > 0, measured
    assert "agreement" not in measured  # texts are compared by meaning, not as labels
    assert measured["canary_requests"] >= 4 and measured["canary_error_rate"] == 0.0
    assert measured["contract"] == {"passed": 2, "failed": []}  # the gate, stable as the incumbent

    # without the gate, so that the canary's answers to mirrored traffic alone must catch it (the gate
    # refuses it too, in its first window: verify's own test shows that)
    with Chats(router.url):
        rolled_back = run_cli("rollout", "start", "chat:3", "--service", "svc", "--steps", "50,100", *FAST,
                              "--no-contract")  # fmt: skip
    status = status_of(rollout_home)
    assert rolled_back.returncode == 1 and status["phase"] == "aborted", rolled_back.stdout
    assert "similarity of the canary's answers to stable's" in status["abort_reason"], status["abort_reason"]
    shown = json.loads(run_cli("models", "show", "chat@production", "--json", check=True).stdout)
    assert shown["version"] == 2
    answer = httpx.post(router.url + "/v1/chat/completions", json={"model": "chat", "messages": [
        {"role": "user", "content": "Name a colour."}]}, timeout=60)  # fmt: skip
    assert answer.status_code == 200 and answer.headers["x-conveyor-version"] == "chat:2"
